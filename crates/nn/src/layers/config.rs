//! [`LayerConfig`]: a layer as data (Keras's `get_config` / `from_config`), the one place that
//! maps each layer type to its serialisable description and back. Saved models store it as
//! JSON; the summary and the ONNX exporter read it to know what a layer is.
use serde::{Deserialize, Serialize};

use super::{
    Activation, Add, AdditiveAttention, Attention, AveragePooling1D, BatchNormalizationConfig,
    Bidirectional, Concatenate, Conv1DConfig, Crf, DenseConfig, Dot, DropoutConfig,
    EmbeddingConfig, Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, GruConfig, Layer,
    LayerNormalizationConfig, LstmConfig, Masking, MaxPooling1D, Merge, MultiHeadAttention,
    Multiply, Name, Recurrent, RepeatVector, Reshape, SimpleRnnConfig, Softmax, SpatialDropout1D,
    Subtract, TimeDistributed,
};
use crate::{NnError, Result};

/// A layer's class and configuration, serialised as `{"class": "LSTM", "config": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", content = "config")]
pub enum LayerConfig {
    Embedding(EmbeddingConfig),
    Dense(DenseConfig),
    Activation(Activation),
    Dropout(DropoutConfig),
    SpatialDropout1D(SpatialDropout1D),
    Conv1D(Conv1DConfig),
    MaxPooling1D(MaxPooling1D),
    AveragePooling1D(AveragePooling1D),
    LayerNormalization(LayerNormalizationConfig),
    BatchNormalization(BatchNormalizationConfig),
    #[serde(rename = "LSTM")]
    Lstm(LstmConfig),
    #[serde(rename = "GRU")]
    Gru(GruConfig),
    #[serde(rename = "SimpleRNN")]
    SimpleRnn(SimpleRnnConfig),
    Masking(Masking),
    Concatenate(Concatenate),
    Add(Add),
    Multiply(Multiply),
    Subtract(Subtract),
    Dot(Dot),
    RepeatVector(RepeatVector),
    Flatten(Flatten),
    Reshape(Reshape),
    Softmax(Softmax),
    GlobalAveragePooling1D(GlobalAveragePooling1D),
    GlobalMaxPooling1D(GlobalMaxPooling1D),
    Attention(Attention),
    AdditiveAttention(AdditiveAttention),
    MultiHeadAttention(MultiHeadAttention),
    #[serde(rename = "CRF")]
    Crf(Crf),
    /// The wrapped layer must be recurrent (LSTM, GRU or SimpleRNN).
    Bidirectional {
        layer: Box<LayerConfig>,
        merge: Merge,
    },
    /// Any layer that takes rows, applied to every step.
    TimeDistributed {
        layer: Box<LayerConfig>,
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
            LayerConfig::Activation(_) => "Activation",
            LayerConfig::Dropout(_) => "Dropout",
            LayerConfig::SpatialDropout1D(_) => "SpatialDropout1D",
            LayerConfig::Conv1D(_) => "Conv1D",
            LayerConfig::MaxPooling1D(_) => "MaxPooling1D",
            LayerConfig::AveragePooling1D(_) => "AveragePooling1D",
            LayerConfig::LayerNormalization(_) => "LayerNormalization",
            LayerConfig::BatchNormalization(_) => "BatchNormalization",
            LayerConfig::Lstm(_) => "LSTM",
            LayerConfig::Gru(_) => "GRU",
            LayerConfig::SimpleRnn(_) => "SimpleRNN",
            LayerConfig::Masking(_) => "Masking",
            LayerConfig::Concatenate(_) => "Concatenate",
            LayerConfig::Add(_) => "Add",
            LayerConfig::Multiply(_) => "Multiply",
            LayerConfig::Subtract(_) => "Subtract",
            LayerConfig::Dot(_) => "Dot",
            LayerConfig::RepeatVector(_) => "RepeatVector",
            LayerConfig::Flatten(_) => "Flatten",
            LayerConfig::Reshape(_) => "Reshape",
            LayerConfig::Softmax(_) => "Softmax",
            LayerConfig::GlobalAveragePooling1D(_) => "GlobalAveragePooling1D",
            LayerConfig::GlobalMaxPooling1D(_) => "GlobalMaxPooling1D",
            LayerConfig::Attention(_) => "Attention",
            LayerConfig::AdditiveAttention(_) => "AdditiveAttention",
            LayerConfig::MultiHeadAttention(_) => "MultiHeadAttention",
            LayerConfig::Crf(_) => "CRF",
            LayerConfig::Bidirectional { .. } => "Bidirectional",
            LayerConfig::TimeDistributed { .. } => "TimeDistributed",
            LayerConfig::Named { layer, .. } => layer.class_name(),
        }
    }

    /// The layer this configuration describes (Keras's `from_config`).
    pub fn build(&self) -> Result<Box<dyn Layer>> {
        Ok(match self {
            LayerConfig::Embedding(c) => Box::new(c.clone().init()),
            LayerConfig::Dense(c) => Box::new(c.clone().init()),
            LayerConfig::Activation(a) => Box::new(*a),
            LayerConfig::Dropout(c) => Box::new(c.clone().init()),
            LayerConfig::SpatialDropout1D(c) => Box::new(c.clone()),
            LayerConfig::Conv1D(c) => Box::new(c.clone().init()),
            LayerConfig::MaxPooling1D(c) => Box::new(c.clone()),
            LayerConfig::AveragePooling1D(c) => Box::new(c.clone()),
            LayerConfig::LayerNormalization(c) => Box::new(c.clone().init()),
            LayerConfig::BatchNormalization(c) => Box::new(c.clone().init()),
            LayerConfig::Lstm(c) => Box::new(c.clone().init()),
            LayerConfig::Gru(c) => Box::new(c.clone().init()),
            LayerConfig::SimpleRnn(c) => Box::new(c.clone().init()),
            LayerConfig::Masking(m) => Box::new(m.clone()),
            LayerConfig::Concatenate(c) => Box::new(c.clone()),
            LayerConfig::Add(c) => Box::new(c.clone()),
            LayerConfig::Multiply(c) => Box::new(c.clone()),
            LayerConfig::Subtract(c) => Box::new(c.clone()),
            LayerConfig::Dot(c) => Box::new(c.clone()),
            LayerConfig::RepeatVector(c) => Box::new(c.clone()),
            LayerConfig::Flatten(c) => Box::new(c.clone()),
            LayerConfig::Reshape(c) => Box::new(c.clone()),
            LayerConfig::Softmax(c) => Box::new(c.clone()),
            LayerConfig::GlobalAveragePooling1D(c) => Box::new(c.clone()),
            LayerConfig::GlobalMaxPooling1D(c) => Box::new(c.clone()),
            LayerConfig::Attention(c) => Box::new(c.clone()),
            LayerConfig::MultiHeadAttention(c) => Box::new(c.clone()),
            LayerConfig::Crf(c) => Box::new(c.clone()),
            LayerConfig::AdditiveAttention(c) => Box::new(c.clone()),
            LayerConfig::Bidirectional { layer, merge } => Box::new(Bidirectional {
                layer: layer.build_recurrent()?,
                merge: *merge,
            }),
            LayerConfig::TimeDistributed { layer } => Box::new(TimeDistributed {
                layer: layer.build()?,
            }),
            LayerConfig::Named { name, layer } => Box::new(layer.build()?.named(name.clone())),
        })
    }

    fn build_recurrent(&self) -> Result<Box<dyn Recurrent>> {
        match self {
            LayerConfig::Lstm(c) => Ok(Box::new(c.clone().init())),
            LayerConfig::Gru(c) => Ok(Box::new(c.clone().init())),
            LayerConfig::SimpleRnn(c) => Ok(Box::new(c.clone().init())),
            other => Err(NnError::Model(format!(
                "Bidirectional wraps an LSTM, a GRU or a SimpleRNN, not a {}",
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
            DropoutConfig::new(0.25).into(),
            Lstm::new(5).named("rnn").into(),
            SimpleRnnConfig::new(6)
                .with_activation(Activation::Relu)
                .with_recurrent_dropout(0.1)
                .into(),
            Dense::new(2, Activation::Softmax).into(),
            Embedding::new(7, 2).into(),
            Concatenate::new(1).into(),
            Add::new().into(),
            Multiply::new().into(),
            Subtract::new().into(),
            Dot::with_axes(2, 1).with_normalize(true).into(),
            RepeatVector::new(3).into(),
            Flatten::new().into(),
            Softmax::new(1).into(),
            GlobalAveragePooling1D::new().into(),
            GlobalMaxPooling1D::new().into(),
            Attention::new().with_use_scale(true).into(),
            AdditiveAttention::new()
                .with_return_attention_scores(true)
                .into(),
            Crf::new(5).into(),
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
