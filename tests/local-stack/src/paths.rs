//! Where the repository's tools and build outputs are.

use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// A program of the project's Python virtualenv (`VENV` or `<repo>/.venv`).
pub fn venv_bin(program: &str) -> PathBuf {
    let venv = std::env::var_os("VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    venv.join("bin").join(program)
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// A built binary of the workspace (debug profile unless `FUNCTION_PROFILE` says otherwise).
pub fn workspace_binary(name: &str) -> PathBuf {
    let profile = std::env::var("FUNCTION_PROFILE").unwrap_or_else(|_| "debug".into());
    target_dir().join(profile).join(name)
}
