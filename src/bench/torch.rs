//! PyTorch's side: `benches/torch_reference.py` on the same workload, in the same run.

use super::measurement::Measurement;
use super::workload::Workload;
use crate::memory::RETAINED_MEMORY_ENV;

/// Whether `python3 -c "import torch"` works here.
pub fn torch_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The path of `benches/torch_reference.py`.
fn torch_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/torch_reference.py")
}

/// The command that runs `benches/torch_reference.py` on workload `w` for `steps` steps, with
/// the allocator settings of [`crate::memory::retain_freed_memory`] as environment variables
/// (PyTorch's tensors come from the same `malloc`), so that both sides allocate alike.
fn torch_command(w: &Workload, steps: usize) -> std::process::Command {
    let mut command = std::process::Command::new("python3");
    command
        .arg(torch_script())
        .args(["--mode", w.mode.name(), "--kind", w.kind.name()])
        .args([
            "--hidden",
            &w.hidden.to_string(),
            "--layers",
            &w.layers.to_string(),
        ])
        .args(["--batch", &w.batch.to_string(), "--seq", &w.seq.to_string()])
        .args([
            "--vocab",
            &w.vocab.to_string(),
            "--steps",
            &steps.to_string(),
        ])
        .args(w.bidirectional.then_some("--bidirectional"))
        .envs(RETAINED_MEMORY_ENV.map(|(name, value)| (name, value.to_string())));
    command
}

/// Runs `benches/torch_reference.py` on workload `w` (same steps, `torch_command`) and parses
/// its JSON line.
pub fn torch_measurement(w: &Workload, steps: usize) -> Result<Measurement, String> {
    let script = torch_script();
    let out = torch_command(w, steps)
        .output()
        .map_err(|e| format!("cannot run python3 {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|e| format!("unexpected output from {}: {e}", script.display()))?;
    let tokens = v["tokens_per_s"]
        .as_f64()
        .ok_or("no tokens_per_s in torch's output")?;
    let name = v["impl"].as_str().unwrap_or("torch").to_string();
    Ok(Measurement::new(&name, w, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Kind;

    #[test]
    fn pytorch_runs_with_the_same_allocator_settings() {
        let mut w = Workload::w1(Kind::Gru);
        w.bidirectional = true;
        let command = torch_command(&w, 7);
        let envs: Vec<_> = command.get_envs().collect();
        for (name, value) in RETAINED_MEMORY_ENV {
            let value = value.to_string();
            assert!(
                envs.contains(&(name.as_ref(), Some(value.as_ref()))),
                "{name}={value} missing from {envs:?}"
            );
        }
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert!(args[0].ends_with("benches/torch_reference.py"));
        let joined = args[1..].join(" ");
        assert!(joined.contains("--kind gru") && joined.contains("--steps 7"));
        assert!(joined.ends_with("--bidirectional"), "{joined}");
    }
}
