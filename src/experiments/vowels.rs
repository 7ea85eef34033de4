//! `japanese_vowels`: speaker classification on the UCI Japanese Vowels data (sktime `.ts`
//! files: 270 training and 370 test utterances, 12 LPC coefficients a step, 7 to 29 steps, 9
//! speakers) with LSTM and GRU classifiers reading each utterance's last valid state.

use crate::classify;
use crate::config::RunConfig;
use crate::data_source::DataSource;
use crate::experiments::{ExampleOptions, Table, fmt};

/// Trains an LSTM and a GRU classifier; returns their test accuracy.
pub fn run(o: &ExampleOptions) -> Result<Table, String> {
    let out = o.out_dir("japanese_vowels");
    let device = crate::device::parse(&o.device)?;
    let DataSource::Cases { train, test } = DataSource::resolve("japanese_vowels")? else {
        unreachable!("japanese_vowels is a classification data set")
    };
    let mut table = Table::new(&["model", "hidden", "epochs", "test accuracy"]);
    for model in ["lstm", "gru"] {
        let cfg = RunConfig {
            model: model.into(),
            data: "japanese_vowels".into(),
            hidden: if o.quick { 16 } else { 64 },
            epochs: if o.quick { 2 } else { 40 },
            batch: 16,
            lr: 5e-3,
            clip: 1.0,
            valid_fraction: 0.1,
            seed: o.seed,
            ..RunConfig::default()
        };
        let scores = classify::train(
            &cfg,
            &train,
            test.as_deref(),
            &device,
            &out.join(model),
            false,
        )?;
        table.push(vec![
            model.into(),
            cfg.hidden.to_string(),
            cfg.epochs.to_string(),
            fmt(scores.accuracy),
        ]);
    }
    table.write(&out, "japanese_vowels")?;
    Ok(table)
}
