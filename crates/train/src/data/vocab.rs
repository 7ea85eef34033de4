//! Character and word vocabularies with an `<unk>` token, saved with the model.

use crate::error::TrainError;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The unknown-token string, always id 0.
pub const UNK: &str = "<unk>";

/// How a text is cut into tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tokenizer {
    /// One token per character.
    Char,
    /// Whitespace-separated words.
    Word,
}

impl Tokenizer {
    /// The tokens of `text`.
    pub fn split(self, text: &str) -> Vec<String> {
        match self {
            Tokenizer::Char => text.chars().map(String::from).collect(),
            Tokenizer::Word => text.split_whitespace().map(String::from).collect(),
        }
    }
}

/// A vocabulary: id 0 is `<unk>`, then the tokens seen at least `min_freq` times, most frequent
/// first (ties in lexical order), as d2l builds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    tokenizer: Tokenizer,
    tokens: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Builds the vocabulary of `text`.
    pub fn build(text: &str, tokenizer: Tokenizer, min_freq: usize) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for t in tokenizer.split(text) {
            *counts.entry(t).or_default() += 1;
        }
        let mut by_freq: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_freq.max(1))
            .collect();
        by_freq.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let tokens = std::iter::once(UNK.to_string())
            .chain(by_freq.into_iter().map(|(t, _)| t))
            .collect();
        Self::from_tokens(tokenizer, tokens)
    }

    fn from_tokens(tokenizer: Tokenizer, tokens: Vec<String>) -> Self {
        let index = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self {
            tokenizer,
            tokens,
            index,
        }
    }

    /// Number of tokens, `<unk>` included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether only `<unk>` is there.
    pub fn is_empty(&self) -> bool {
        self.tokens.len() <= 1
    }

    /// The id of a token (`0` = `<unk>` for unseen ones).
    pub fn id(&self, token: &str) -> u32 {
        self.index.get(token).copied().unwrap_or(0)
    }

    /// The ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .split(text)
            .iter()
            .map(|t| self.id(t))
            .collect()
    }

    /// The text of `ids` (characters joined directly, words with spaces).
    pub fn decode(&self, ids: &[u32]) -> String {
        let tokens = ids
            .iter()
            .map(|&i| self.tokens.get(i as usize).map_or(UNK, String::as_str));
        match self.tokenizer {
            Tokenizer::Char => tokens.collect(),
            Tokenizer::Word => tokens.collect::<Vec<_>>().join(" "),
        }
    }

    /// JSON text of the vocabulary (to save it with a model).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a vocabulary serialises")
    }

    /// A vocabulary read back from [`Self::to_json`]'s text.
    pub fn from_json(json: &str) -> Result<Self, TrainError> {
        let malformed = |why: String| TrainError::Invalid(format!("malformed vocabulary: {why}"));
        let v: Vocab = serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
        if v.tokens.first().map(String::as_str) != Some(UNK) {
            return Err(malformed(format!("token 0 must be {UNK}")));
        }
        Ok(Self::from_tokens(v.tokenizer, v.tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_vocab_orders_by_frequency_and_maps_unknowns_to_unk() {
        let v = Vocab::build("abracadabra", Tokenizer::Char, 1);
        assert_eq!(v.len(), 6);
        assert_eq!(v.id(UNK), 0);
        assert_eq!(v.id("a"), 1, "a is the most frequent");
        assert_eq!(
            (v.id("b"), v.id("r")),
            (2, 3),
            "b and r tie at 2, lexical order"
        );
        assert_eq!(v.id("z"), 0);
        assert_eq!(v.decode(&v.encode("abracadabra")), "abracadabra");
        assert_eq!(v.decode(&v.encode("abz")), "ab<unk>");
    }

    #[test]
    fn word_vocab_with_min_freq_and_json_round_trip() {
        let v = Vocab::build("the cat and the hat and the bat", Tokenizer::Word, 2);
        assert_eq!(v.len(), 3); // <unk>, the, and
        assert_eq!(v.decode(&v.encode("the cat")), "the <unk>");
        let back = Vocab::from_json(&v.to_json()).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.id("and"), v.id("and"));
        assert!(Vocab::from_json("{not json").is_err());
    }
}
