//! What the command-line tests share: running the `sequent` binary, checking its one-line
//! errors, scratch directories and tiny data sets.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn sequent(args: &[&str]) -> Output {
    sequent_with(&[], args)
}

/// `sequent args` with the variables `env` set.
pub fn sequent_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sequent"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runs the binary")
}

pub fn ok(args: &[&str]) -> String {
    let out = sequent(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sequent {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a failing command; returns its error line after checking the exit code and that no
/// panic or backtrace was printed.
pub fn fails(args: &[&str]) -> String {
    fails_with(&[], args)
}

/// [`fails`] with the variables `env` set.
pub fn fails_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = sequent_with(env, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "sequent {args:?} should fail with exit code 1 or 2, not {:?}:\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "sequent {args:?} panicked:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    errors[0].to_string()
}

pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sequent-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p.display().to_string()
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tiny_text() -> String {
    "to be or not to be that is the question whether tis nobler in the mind to suffer ".repeat(12)
}

pub fn tiny_series() -> String {
    let mut csv = String::from("t,value,other\n");
    for t in 0..240 {
        let x = (t as f64 * 0.2).sin() + 0.1 * ((t * 7 % 11) as f64 / 11.0);
        csv.push_str(&format!("{t},{x},{}\n", t % 5));
    }
    csv
}

/// Small settings for a language model.
pub const SMALL: &[&str] = &[
    "--hidden",
    "8",
    "--embedding",
    "8",
    "--epochs",
    "2",
    "--steps",
    "8",
    "--batch",
    "4",
];

/// [`SMALL`] without what only text uses: for series and `.ts` cases.
pub const SMALL_SERIES: &[&str] = &[
    "--hidden", "8", "--epochs", "2", "--steps", "8", "--batch", "4",
];

pub fn exists(run: &str, files: &[&str]) {
    for f in files {
        assert!(Path::new(run).join(f).is_file(), "{run}/{f} missing");
    }
}

pub fn tiny_cases(n: usize) -> String {
    let mut ts = String::from("@problemName toy\n@dimensions 2\n@classLabel true up down\n@data\n");
    for i in 0..n {
        let len = 4 + i % 5;
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        let a: Vec<String> = (0..len)
            .map(|t| format!("{}", sign * t as f64 / 4.0))
            .collect();
        let b: Vec<String> = (0..len).map(|t| format!("{}", (t as f64).sin())).collect();
        let label = if i % 2 == 0 { "up" } else { "down" };
        ts.push_str(&format!("{}:{}:{label}\n", a.join(","), b.join(",")));
    }
    ts
}
