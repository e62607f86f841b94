//! Finds libmfa for linking, in this order:
//!
//! 1. `MFA_LIB_DIR`: a directory holding an already built `libmfa.so` (e.g. this repository's
//!    `build/`, or an install's `lib/`).
//! 2. Otherwise this repository (three levels up) is configured and built with cmake into
//!    `OUT_DIR`: only the library target, with `-DMFA_CUDA=${MFA_CUDA:-OFF}`.
//!
//! Either way the library files end up in a directory inside cargo's target directory (in case 1
//! as symbolic links to the originals), so `cargo run` and `cargo test` find `libmfa.so` at run
//! time without LD_LIBRARY_PATH: cargo adds build-script search paths that lie inside the target
//! directory to the loader path of the programs it runs. Binaries run outside cargo need the
//! directory on LD_LIBRARY_PATH (or an installed libmfa).
//!
//! Dependents (`links = "mfa"`) receive `DEP_MFA_LIB_DIR` and `DEP_MFA_INCLUDE`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MFA_LIB_DIR");
    println!("cargo:rerun-if-env-changed=MFA_CUDA");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest.join("../../..");

    let lib_dir = match env::var_os("MFA_LIB_DIR") {
        Some(dir) if !dir.is_empty() => link_prebuilt(Path::new(&dir), &out.join("lib")),
        _ => build_with_cmake(&repo, &out.join("cmake-build")),
    };
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=mfa");
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:include={}", repo.join("include").display());
}

/// Links every `libmfa*` file of `dir` (the library, its soname links, a CUDA plugin) into
/// `dest`, so the library loads from inside the target directory and finds its plugin beside it.
fn link_prebuilt(dir: &Path, dest: &Path) -> PathBuf {
    let dir = fs::canonicalize(dir)
        .unwrap_or_else(|e| panic!("MFA_LIB_DIR={}: {e}", dir.display()));
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("MFA_LIB_DIR={}: {e}", dir.display()));
    let _ = fs::remove_dir_all(dest);
    fs::create_dir_all(dest).expect("create OUT_DIR/lib");
    let mut found = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("libmfa") || !name.contains(".so") {
            continue;
        }
        found |= name.as_ref() == "libmfa.so";
        std::os::unix::fs::symlink(entry.path(), dest.join(name.as_ref()))
            .unwrap_or_else(|e| panic!("link {}: {e}", entry.path().display()));
    }
    assert!(found, "MFA_LIB_DIR={} holds no libmfa.so", dir.display());
    println!("cargo:rerun-if-changed={}", dir.join("libmfa.so").display());
    dest.to_path_buf()
}

/// Configures and builds this repository's `mfa` target with cmake into `build`.
fn build_with_cmake(repo: &Path, build: &Path) -> PathBuf {
    let repo = fs::canonicalize(repo).expect("repository root");
    if !repo.join("CMakeLists.txt").is_file() {
        panic!(
            "libmfa not found: set MFA_LIB_DIR to the directory holding libmfa.so \
             (no CMakeLists.txt at {} to build it from)",
            repo.display()
        );
    }
    for watched in ["CMakeLists.txt", "include", "src"] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let cuda = env::var("MFA_CUDA").unwrap_or_else(|_| "OFF".to_string());
    run(Command::new("cmake")
        .arg("-S")
        .arg(&repo)
        .arg("-B")
        .arg(build)
        .arg("-DCMAKE_BUILD_TYPE=Release")
        .arg("-DMFA_BUILD_TESTS=OFF")
        .arg("-DMFA_BUILD_TOOLS=OFF")
        .arg(format!("-DMFA_CUDA={cuda}")));
    let jobs = env::var("NUM_JOBS").unwrap_or_else(|_| "2".to_string());
    // With MFA_CUDA off only the library; otherwise every target (the library and the plugin,
    // which must land beside it: libmfa loads libmfa_cuda.so from its own directory).
    let mut cmd = Command::new("cmake");
    cmd.arg("--build").arg(build).args(["-j", &jobs]);
    if cuda == "OFF" {
        cmd.args(["--target", "mfa"]);
    }
    run(&mut cmd);
    build.to_path_buf()
}

/// Runs a cmake step; its output is shown only when it fails (a build script's stdout is read by
/// cargo as instructions).
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is cmake installed?)"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
