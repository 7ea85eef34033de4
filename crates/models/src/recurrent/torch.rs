//! PyTorch interop: load a `state_dict` of `nn.RNN/LSTM/GRU` (or of a `*Cell`) and save one back.
//!
//! sequent's parameters already have PyTorch's layout (`[G*H, I]`, gate order LSTM i, f, g, o and
//! GRU r, z, n), so import and export are renames only:
//! `weight_ih_l{k}` <-> `layers.{k}.forward.weight_ih`,
//! `weight_ih_l{k}_reverse` <-> `layers.{k}.reverse.weight_ih` (and `weight_hh`, `bias_ih`,
//! `bias_hh` alike, and an LSTM's projection `weight_hr_l{k}[_reverse]`); a cell's `weight_ih`
//! <-> `weights.weight_ih`. PyTorch has no layer-normalised LSTM or GRU: their layer norms go by
//! the names of `nn.LayerNorm` modules `layer_norm_{ih,hh,c}_l{k}[_reverse]` (`.weight` the gain,
//! `.bias` the bias), the names `scripts/gen_parity_fixtures.py` writes.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Module;
use burn::store::{ApplyResult, ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore};

use super::cell_kind::CellKind;
use super::single_step::RecurrentCell;
use super::stack::Recurrent;
use super::torch_zip::without_redundant_zip64;
use crate::error::{ErrorSource, Result, SequentError};

/// Regex renames from PyTorch's names to sequent's module paths, and back.
struct Names {
    import: &'static [(&'static str, &'static str)],
    export: &'static [(&'static str, &'static str)],
}

const STACK: Names = Names {
    import: &[
        (
            r"^(weight|bias)_(ih|hh|hr)_l(\d+)_reverse$",
            "layers.$3.reverse.${1}_$2",
        ),
        (
            r"^(weight|bias)_(ih|hh|hr)_l(\d+)$",
            "layers.$3.forward.${1}_$2",
        ),
        (
            r"^layer_norm_(ih|hh|c)_l(\d+)_reverse\.weight$",
            "layers.$2.reverse.layer_norm.$1.gamma",
        ),
        (
            r"^layer_norm_(ih|hh|c)_l(\d+)_reverse\.bias$",
            "layers.$2.reverse.layer_norm.$1.beta",
        ),
        (
            r"^layer_norm_(ih|hh|c)_l(\d+)\.weight$",
            "layers.$2.forward.layer_norm.$1.gamma",
        ),
        (
            r"^layer_norm_(ih|hh|c)_l(\d+)\.bias$",
            "layers.$2.forward.layer_norm.$1.beta",
        ),
    ],
    export: &[
        (
            r"^layers\.(\d+)\.reverse\.(weight|bias)_(ih|hh|hr)$",
            "${2}_${3}_l${1}_reverse",
        ),
        (
            r"^layers\.(\d+)\.forward\.(weight|bias)_(ih|hh|hr)$",
            "${2}_${3}_l$1",
        ),
        (
            r"^layers\.(\d+)\.reverse\.layer_norm\.(ih|hh|c)\.gamma$",
            "layer_norm_${2}_l${1}_reverse.weight",
        ),
        (
            r"^layers\.(\d+)\.reverse\.layer_norm\.(ih|hh|c)\.beta$",
            "layer_norm_${2}_l${1}_reverse.bias",
        ),
        (
            r"^layers\.(\d+)\.forward\.layer_norm\.(ih|hh|c)\.gamma$",
            "layer_norm_${2}_l${1}.weight",
        ),
        (
            r"^layers\.(\d+)\.forward\.layer_norm\.(ih|hh|c)\.beta$",
            "layer_norm_${2}_l${1}.bias",
        ),
    ],
};

const CELL: Names = Names {
    import: &[(r"^(weight|bias)_(ih|hh|hr)$", "weights.${1}_$2")],
    export: &[(r"^weights\.(weight|bias)_(ih|hh|hr)$", "${1}_$2")],
};

impl Names {
    /// The PyTorch name of a module path, for messages.
    fn torch_name(&self, path: &str) -> String {
        for (from, to) in self.export {
            let re = regex::Regex::new(from).expect("valid pattern");
            if re.is_match(path) {
                return re.replace(path, *to).into_owned();
            }
        }
        path.to_string()
    }

    /// Loads `path` into a copy of `module`; the copy replaces it only if every tensor fits.
    fn load<M: Module>(&self, module: &mut M, path: &Path) -> Result<()> {
        if !path.is_file() {
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
            return Err(weight_io(path, missing));
        }
        let mut copy = module.clone();
        let is_pt = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pt" | "pth" | "bin")
        );
        let result = if is_pt {
            match self.load_pt(&mut copy, path) {
                Ok(result) => result,
                // A zip container the reader misreads is read again without the records it
                // trips on (see `torch_zip`).
                Err(e) => match self.load_repaired_pt(module, path) {
                    Some(Ok((repaired, result))) => {
                        copy = repaired;
                        result
                    }
                    _ => return Err(weight_io(path, e)),
                },
            }
        } else {
            let store = self
                .import
                .iter()
                .fold(SafetensorsStore::from_file(path), |s, (f, t)| {
                    s.with_key_remapping(*f, *t)
                });
            apply(&mut copy, store.allow_partial(true).validate(false))
                .map_err(|e| weight_io(path, e))?
        };
        let mut problems: Vec<String> = Vec::new();
        problems.extend(
            result
                .missing
                .iter()
                .map(|(p, _)| format!("missing tensor `{}`", self.torch_name(p))),
        );
        problems.extend(
            result
                .unused
                .iter()
                .map(|p| format!("unexpected tensor `{}`", self.torch_name(p))),
        );
        problems.extend(result.errors.iter().map(|e| match e {
            burn::store::ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                format!(
                    "tensor `{}` has shape {:?}, the layer needs {:?}",
                    self.torch_name(path),
                    found.as_slice(),
                    expected.as_slice()
                )
            }
            other => other.to_string(),
        }));
        if !problems.is_empty() {
            return Err(SequentError::WeightMismatch {
                path: path.to_path_buf(),
                problems,
            });
        }
        *module = copy;
        Ok(())
    }

    /// Loads the `.pt` file `file` into `module`.
    fn load_pt<M: Module>(
        &self,
        module: &mut M,
        file: &Path,
    ) -> std::result::Result<ApplyResult, <PytorchStore as ModuleStore>::Error> {
        let store = self
            .import
            .iter()
            .fold(PytorchStore::from_file(file), |s, (f, t)| {
                s.with_key_remapping(*f, *t)
            });
        apply(module, store.allow_partial(true).validate(false))
    }

    /// Loads `path` into a copy of `module` from a temporary copy of the file without its
    /// redundant ZIP64 records; `None` if the file has none to drop or cannot be copied.
    fn load_repaired_pt<M: Module>(
        &self,
        module: &M,
        path: &Path,
    ) -> Option<std::result::Result<(M, ApplyResult), <PytorchStore as ModuleStore>::Error>> {
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let fixed = without_redundant_zip64(&std::fs::read(path).ok()?)?;
        let copy = std::env::temp_dir().join(format!(
            "sequent-{}-{}.pt",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&copy, fixed).ok()?;
        let mut repaired = module.clone();
        let result = self.load_pt(&mut repaired, &copy);
        std::fs::remove_file(&copy).ok();
        Some(result.map(|r| (repaired, r)))
    }

    /// Writes `module` as a safetensors file with PyTorch's names, atomically (temp file + rename).
    fn save<M: Module>(&self, module: &M, path: &Path) -> Result<()> {
        let tmp = path.with_extension("safetensors.partial");
        let mut store = self
            .export
            .iter()
            .fold(SafetensorsStore::from_file(&tmp), |s, (f, t)| {
                s.with_key_remapping(*f, *t)
            })
            .overwrite(true);
        module
            .save_into(&mut store)
            .map_err(|e| weight_io(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| weight_io(path, e))
    }
}

/// [`SequentError::WeightIo`] for `path`, keeping `source`.
fn weight_io(path: &Path, source: impl std::error::Error + Send + Sync + 'static) -> SequentError {
    SequentError::WeightIo {
        path: path.to_path_buf(),
        source: ErrorSource::new(source),
    }
}

fn apply<M: Module, S: ModuleStore>(
    module: &mut M,
    mut store: S,
) -> std::result::Result<ApplyResult, S::Error> {
    module.load_from(&mut store)
}

impl<C: CellKind> Recurrent<C> {
    /// Loads a `state_dict` saved from PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` with the same
    /// sizes: a safetensors file (`safetensors.torch.save_file(layer.state_dict(), path)`) or a
    /// `.pt` / `.pth` file (`torch.save(layer.state_dict(), path)`).
    ///
    /// Every tensor must be present with the right shape and no other may be there; otherwise
    /// [`SequentError::WeightMismatch`] lists each problem and `self` is left unchanged.
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> Result<()> {
        STACK.load(self, path.as_ref())
    }

    /// Saves the weights as a safetensors `state_dict` that PyTorch loads with
    /// `layer.load_state_dict(safetensors.torch.load_file(path))`.
    pub fn save_pytorch(&self, path: impl AsRef<Path>) -> Result<()> {
        STACK.save(self, path.as_ref())
    }
}

impl<C: CellKind> RecurrentCell<C> {
    /// Loads a `state_dict` of PyTorch's `nn.RNNCell` / `nn.LSTMCell` / `nn.GRUCell` (see
    /// [`Recurrent::load_pytorch`]).
    pub fn load_pytorch(&mut self, path: impl AsRef<Path>) -> Result<()> {
        CELL.load(self, path.as_ref())
    }

    /// Saves the weights as a safetensors `state_dict` of the matching PyTorch cell.
    pub fn save_pytorch(&self, path: impl AsRef<Path>) -> Result<()> {
        CELL.save(self, path.as_ref())
    }
}
