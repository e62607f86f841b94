//! The libmfa example in Zig. `zig build run` builds and runs it (`zig build run -- bench` for
//! the per-call timing, with -Doptimize=ReleaseFast), against the binding in ../../bindings/zig and libmfa in ../../build.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const mfa = b.dependency("mfa", .{ .target = target, .optimize = optimize }).module("mfa");
    const exe = b.addExecutable(.{
        .name = "attention",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/main.zig"),
            .target = target,
            .optimize = optimize,
            .imports = &.{.{ .name = "mfa", .module = mfa }},
        }),
    });
    b.installArtifact(exe);
    const run = b.addRunArtifact(exe);
    if (b.args) |args| run.addArgs(args);
    b.step("run", "Run the example").dependOn(&run.step);
}
