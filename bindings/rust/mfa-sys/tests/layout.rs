//! The hand-written declarations against the real header: a small C program, compiled here
//! against `include/mfa.h` with the system C compiler (`$CC`, else `cc`), prints the size of
//! every struct, the offset of every field and the value of every constant; each must equal what
//! Rust computes for the declarations in `src/lib.rs`. One list drives both sides, so a field
//! added on one side only cannot go unnoticed (it moves an offset or the size).

use mfa_sys::*;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

/// (C expression printed by the probe, value Rust computes)
type Row = (String, i64);

macro_rules! layout {
    ($rows:ident, $ty:ident; $($field:ident),+ $(,)?) => {
        $rows.push((format!("sizeof({})", stringify!($ty)), size_of::<$ty>() as i64));
        $( $rows.push((format!("offsetof({}, {})", stringify!($ty), stringify!($field)),
                       offset_of!($ty, $field) as i64)); )+
    };
}

macro_rules! constants {
    ($rows:ident; $($name:ident),+ $(,)?) => {
        $( $rows.push((stringify!($name).to_string(), $name as i64)); )+
    };
}

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    layout!(rows, mfa_context_options_t; struct_size, backend, device, num_threads);
    layout!(rows, mfa_tensor_t; data, buffer, byte_offset, dtype, reserved_, stride);
    layout!(rows, mfa_attention_params_t;
        struct_size, reserved_, batch, seqlen_q, seqlen_kv, heads_q, heads_kv, head_dim_qk,
        head_dim_v, q, k, v, o, lse, softmax_scale, softcap, mask, mask_align, window_left,
        window_right, block_mask, block_q, block_kv, block_mask_rows, block_mask_cols,
        block_mask_stride, attn_mask, cu_seqlens_q, cu_seqlens_kv, dout, dq, dk, dv,
        deterministic, allow_tf32);
    rows.push(("sizeof(mfa_error_t)".into(), size_of::<mfa_error_t>() as i64));
    rows.push(("sizeof(mfa_precision_t)".into(), size_of::<mfa_precision_t>() as i64));
    rows.push(("sizeof(mfa_context_t)".into(), size_of::<mfa_context_t>() as i64));
    rows.push(("sizeof(mfa_buffer_t)".into(), size_of::<mfa_buffer_t>() as i64));
    constants!(rows;
        MFA_VERSION_MAJOR, MFA_VERSION_MINOR, MFA_VERSION_PATCH, MFA_VERSION_NUMBER,
        MFA_SUCCESS, MFA_ERROR_INVALID_ARGS, MFA_ERROR_MEMORY_ALLOCATION,
        MFA_ERROR_DEVICE_NOT_SUPPORTED, MFA_ERROR_KERNEL_COMPILATION, MFA_ERROR_EXECUTION_FAILED,
        MFA_ERROR_NULL_POINTER, MFA_ERROR_UNSUPPORTED, MFA_ERROR_OUT_OF_BOUNDS,
        MFA_ERROR_WRONG_CONTEXT, MFA_PRECISION_FP16, MFA_PRECISION_BF16, MFA_PRECISION_FP32,
        MFA_DTYPE_F16, MFA_DTYPE_BF16, MFA_DTYPE_F32, MFA_DTYPE_BOOL, MFA_BACKEND_AUTO,
        MFA_BACKEND_CPU, MFA_BACKEND_CUDA, MFA_BACKEND_REFERENCE, MFA_MASK_NONE, MFA_MASK_CAUSAL,
        MFA_MASK_WINDOW, MFA_ALIGN_TOP_LEFT, MFA_ALIGN_BOTTOM_RIGHT, MFA_DIRECTION_FWD,
        MFA_DIRECTION_BWD);
    rows
}

fn include_dir() -> PathBuf {
    match std::env::var_os("MFA_INCLUDE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include"),
    }
}

/// Compiles and runs the probe; returns its lines.
fn probe(rows: &[Row]) -> Vec<String> {
    let mut src = String::from("#include <stddef.h>\n#include <stdio.h>\n#include \"mfa.h\"\nint main(void) {\n");
    for (expr, _) in rows {
        src += &format!("    printf(\"%s %lld\\n\", \"{expr}\", (long long)({expr}));\n");
    }
    src += "    return 0;\n}\n";
    let dir = std::env::temp_dir().join(format!("mfa-sys-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (c_file, exe) = (dir.join("probe.c"), dir.join("probe"));
    std::fs::write(&c_file, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(include_dir())
        .arg(&c_file)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(status.success(), "compiling the layout probe failed");
    let out = Command::new(&exe).output().expect("run the layout probe");
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn structs_and_constants_match_the_c_header() {
    let rows = rows();
    let lines = probe(&rows);
    assert_eq!(lines.len(), rows.len());
    let mut mismatches = Vec::new();
    for ((expr, rust), line) in rows.iter().zip(&lines) {
        let c: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        if c != *rust {
            mismatches.push(format!("{expr}: C {c}, Rust {rust}"));
        }
    }
    assert!(mismatches.is_empty(), "layout differs from mfa.h:\n{}", mismatches.join("\n"));
    println!("{} sizes, offsets and constants match mfa.h", rows.len());
}

#[test]
fn params_init_fills_what_the_header_says() {
    let mut p = std::mem::MaybeUninit::<mfa_attention_params_t>::uninit();
    // SAFETY: mfa_attention_params_init writes every byte of the struct.
    let p = unsafe {
        mfa_attention_params_init(p.as_mut_ptr());
        p.assume_init()
    };
    assert_eq!(p.struct_size as usize, size_of::<mfa_attention_params_t>());
    assert_eq!((p.mask, p.mask_align, p.window_left, p.window_right), (MFA_MASK_NONE, MFA_ALIGN_TOP_LEFT, -1, -1));
    assert!(p.q.data.is_null() && p.lse.is_null() && p.cu_seqlens_q.is_null());
    let (mut major, mut minor, mut patch) = (-1, -1, -1);
    // SAFETY: three valid out-pointers.
    unsafe { mfa_get_version(&mut major, &mut minor, &mut patch) };
    assert_eq!((major, minor, patch), (MFA_VERSION_MAJOR, MFA_VERSION_MINOR, MFA_VERSION_PATCH));
}
