//! The Zig binding of libmfa. `zig build test` translates include/mfa.h (translate-c), builds
//! the wrapper (src/mfa.zig) and its tests against libmfa, and runs them.
//!
//! libmfa is found in this repository's build/ (cmake -S . -B build && cmake --build build), or
//! in the directory given with -Dmfa-lib-dir=...; the header in ../../include or -Dmfa-include-dir.
//! Other packages depend on this one through build.zig.zon and use the module "mfa".
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    // Absolute paths: the library directory also becomes the executables' rpath.
    const repo = b.pathFromRoot("../..");
    const include_dir: std.Build.LazyPath = .{ .cwd_relative = b.option([]const u8, "mfa-include-dir", "directory holding mfa.h (absolute)") orelse
        b.fmt("{s}/include", .{repo}) };
    const lib_dir: std.Build.LazyPath = .{ .cwd_relative = b.option([]const u8, "mfa-lib-dir", "directory holding libmfa.so (absolute)") orelse
        b.fmt("{s}/build", .{repo}) };

    // mfa.h -> Zig declarations, the module "c" of the wrapper
    const translate = b.addTranslateC(.{
        .root_source_file = include_dir.path(b, "mfa.h"),
        .target = target,
        .optimize = optimize,
    });
    const c_module = translate.createModule();

    const mfa = b.addModule("mfa", .{
        .root_source_file = b.path("src/mfa.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{.{ .name = "c", .module = c_module }},
    });
    mfa.addLibraryPath(lib_dir);
    mfa.addRPath(lib_dir);
    mfa.linkSystemLibrary("mfa", .{});

    // Tests: the wrapper against the reference backend, plus a C file that reports the header's
    // layout as the C compiler sees it.
    const test_module = b.createModule(.{
        .root_source_file = b.path("src/test.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .imports = &.{.{ .name = "mfa", .module = mfa }},
    });
    test_module.addIncludePath(include_dir);
    test_module.addCSourceFile(.{ .file = b.path("src/layout.c"), .flags = &.{ "-std=c11", "-Wall", "-Wextra", "-Werror" } });
    const tests = b.addTest(.{ .root_module = test_module });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the binding's tests").dependOn(&run_tests.step);
}
