//! Build script: records the git commit in `STRAIT_COMMIT` for `strait version` and `strait_build_info`.

#[path = "build/commit.rs"]
mod commit;

fn main() {
    println!("cargo:rerun-if-env-changed=STRAIT_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/commit.rs");
    let dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let forced = std::env::var("STRAIT_BUILD_COMMIT").ok();
    let (commit, files) = commit::describe(&dir, forced.as_deref());
    for f in files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rustc-env=STRAIT_COMMIT={commit}");
}
