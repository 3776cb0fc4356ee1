//! Build-time facts the tests need.
//!
//! The browser tests drive Chromium through chromedriver. Where both are installed this
//! sets `cfg(chromium)` and passes their paths on as `E2E_CHROMIUM` and
//! `E2E_CHROMEDRIVER`; elsewhere the browser tests are reported as ignored.
//! `CHROMIUM` and `CHROMEDRIVER` name other binaries than Debian's
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The binary named by `var`, else `default`; reruns when either changes.
fn binary(var: &str, default: &str) -> Option<PathBuf> {
    println!("cargo::rerun-if-env-changed={var}");
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    let executable = path
        .metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    // A missing file would make cargo rerun this script on every build: watch the
    // directory it would appear in instead.
    let watched = if executable {
        path.as_path()
    } else {
        path.parent().unwrap_or(Path::new("/"))
    };
    if watched.exists() {
        println!("cargo::rerun-if-changed={}", watched.display());
    }
    executable.then_some(path)
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds the migrations: rebuild when one is added or changed.
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rustc-check-cfg=cfg(chromium)");
    let chromium = binary("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
    if let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) {
        println!("cargo::rustc-cfg=chromium");
        println!("cargo::rustc-env=E2E_CHROMIUM={}", chromium.display());
        println!(
            "cargo::rustc-env=E2E_CHROMEDRIVER={}",
            chromedriver.display()
        );
    }
}
