//! [`LayerConfig`]: a layer as data (Keras's `get_config` / `from_config`), the one place that
//! maps each layer type to its serialisable description and back. Saved models store it as
//! JSON; the summary and the ONNX exporter read it to know what a layer is.
use serde::{Deserialize, Serialize};

use super::{
    Bidirectional, DenseConfig, DropoutConfig, EmbeddingConfig, GruConfig, Layer, LstmConfig,
    Masking, Merge, Name, Recurrent, RepeatVector,
};
use crate::{NnError, Result};

/// A layer's class and configuration, serialised as `{"class": "LSTM", "config": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "config")]
pub enum LayerConfig {
    Embedding(EmbeddingConfig),
    Dense(DenseConfig),
    Dropout(DropoutConfig),
    #[serde(rename = "LSTM")]
    Lstm(LstmConfig),
    #[serde(rename = "GRU")]
    Gru(GruConfig),
    Masking(Masking),
    RepeatVector(RepeatVector),
    /// The wrapped layer must be recurrent (LSTM or GRU).
    Bidirectional {
        layer: Box<LayerConfig>,
        merge: Merge,
    },
    /// A layer under a module name the user chose ([`Name::named`]).
    Named {
        name: String,
        layer: Box<LayerConfig>,
    },
}

impl LayerConfig {
    /// Keras's class name (`LSTM`, `Dense`, ...); a named layer's is its inner layer's.
    pub fn class_name(&self) -> &'static str {
        match self {
            LayerConfig::Embedding(_) => "Embedding",
            LayerConfig::Dense(_) => "Dense",
            LayerConfig::Dropout(_) => "Dropout",
            LayerConfig::Lstm(_) => "LSTM",
            LayerConfig::Gru(_) => "GRU",
            LayerConfig::Masking(_) => "Masking",
            LayerConfig::RepeatVector(_) => "RepeatVector",
            LayerConfig::Bidirectional { .. } => "Bidirectional",
            LayerConfig::Named { layer, .. } => layer.class_name(),
        }
    }

    /// The layer this configuration describes (Keras's `from_config`).
    pub fn build(&self) -> Result<Box<dyn Layer>> {
        Ok(match self {
            LayerConfig::Embedding(c) => Box::new(c.clone().init()),
            LayerConfig::Dense(c) => Box::new(c.clone().init()),
            LayerConfig::Dropout(c) => Box::new(c.clone().init()),
            LayerConfig::Lstm(c) => Box::new(c.clone().init()),
            LayerConfig::Gru(c) => Box::new(c.clone().init()),
            LayerConfig::Masking(m) => Box::new(m.clone()),
            LayerConfig::RepeatVector(r) => Box::new(r.clone()),
            LayerConfig::Bidirectional { layer, merge } => Box::new(Bidirectional {
                layer: layer.build_recurrent()?,
                merge: *merge,
            }),
            LayerConfig::Named { name, layer } => Box::new(layer.build()?.named(name.clone())),
        })
    }

    fn build_recurrent(&self) -> Result<Box<dyn Recurrent>> {
        match self {
            LayerConfig::Lstm(c) => Ok(Box::new(c.clone().init())),
            LayerConfig::Gru(c) => Ok(Box::new(c.clone().init())),
            other => Err(NnError::Model(format!(
                "Bidirectional wraps an LSTM or a GRU, not a {}",
                other.class_name()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Activation, Dense, Embedding, Lstm};

    #[test]
    fn every_layer_round_trips_through_json() {
        let layers: Vec<Box<dyn Layer>> = vec![
            EmbeddingConfig::new(100, 8).with_mask_zero(true).into(),
            LstmConfig::new(4).with_return_sequences(true).into(),
            Bidirectional::new(GruConfig::new(3).with_return_sequences(true).init())
                .with_merge(Merge::Ave)
                .into(),
            Masking::new(-1.5).into(),
            RepeatVector::new(3).into(),
            DropoutConfig::new(0.25).into(),
            Lstm::new(5).named("rnn").into(),
            Dense::new(2, Activation::Softmax).into(),
            Embedding::new(7, 2).into(),
        ];
        for l in &layers {
            let c = l.config().expect("built-in layers have a config");
            let json = serde_json::to_string(&c).unwrap();
            let back: LayerConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c, "{json}");
            assert_eq!(back.build().unwrap().config(), Some(c));
        }
        let json = serde_json::to_string(&Lstm::new(5).config().unwrap()).unwrap();
        assert!(
            json.starts_with(r#"{"class":"LSTM","config":{"units":5,"#),
            "{json}"
        );
    }

    #[test]
    fn bidirectional_of_a_dense_is_an_error() {
        let c = LayerConfig::Bidirectional {
            layer: Box::new(LayerConfig::Dense(DenseConfig::new(1))),
            merge: Merge::Concat,
        };
        let e = c.build().unwrap_err().to_string();
        assert!(e.contains("not a Dense"), "{e}");
    }
}
