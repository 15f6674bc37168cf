//! trellis-nn: Keras-style layers, losses, optimisers, metrics and models (`Sequential`, and
//! the functional API: [`functional`]) on top of the trellis graph, autodiff and JIT; plus the
//! data pipeline and checkpoints.
//!
//! ```no_run
//! use trellis_nn::prelude::*;
//! let enc = data::encode_dataset(&data::imdb::subset()?, 10_000, 200)?;
//! let mut model = Sequential::new()
//!     .add(Embedding::new(10_000, 128))
//!     .add(LstmConfig::new(128).with_return_sequences(true))
//!     .add(Lstm::new(128))
//!     .add(Dense::new(1, Activation::Sigmoid));
//! model.compile(Adam::default(), Loss::BinaryCrossentropy, &[Metric::Accuracy])?;
//! model.fit(&enc.x_train, &enc.y_train, &FitOptions::new(3, 128))?;
//! println!("{:?}", model.evaluate(&enc.x_test, &enc.y_test)?);
//! # Ok::<(), trellis_nn::NnError>(())
//! ```

pub mod budget;
pub mod callbacks;
pub mod checkpoint;
pub mod data;
pub mod decode;
pub mod error;
pub mod functional;
pub mod init;
pub mod layers;
pub mod losses;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod optim;
mod plot;
pub mod regularizers;
pub mod schedules;
pub mod spans;

pub use callbacks::{
    Callback, CsvLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau,
    TerminateOnNaN,
};
pub use error::{NnError, Result};
pub use functional::{Call, Input, LayerRef, SymTensor};
pub use init::Init;
pub use layers::{
    Activation, Add, AdditiveAttention, Attention, AveragePooling1D, BatchNormalization,
    BatchNormalizationConfig, Bidirectional, Concatenate, Conv1D, Conv1DConfig, Crf, Dense,
    DenseConfig, Dot, Dropout, DropoutConfig, Embedding, EmbeddingConfig, Flatten,
    GlobalAveragePooling1D, GlobalMaxPooling1D, Gru, GruConfig, Lambda, LambdaFn, Layer,
    LayerConfig, LayerNormalization, LayerNormalizationConfig, Lstm, LstmConfig, Masking,
    MaxPooling1D, Merge, MultiHeadAttention, Multiply, Name, Named, Padding, ParamSpec, Recurrent,
    RecurrentCell, RepeatVector, Reshape, Rnn, RnnConfig, SimpleRnn, SimpleRnnConfig, Softmax,
    SpatialDropout1D, Subtract, TimeDistributed,
};
pub use losses::{Loss, LossConfig};
pub use metrics::Metric;
pub use model::{
    EpochLog, Evaluation, FitOptions, History, Inputs, Losses, Model, OutputNodes, Sequential,
    StepGraph, Summary, Targets,
};
/// The array crate that [`Inputs`] and [`Targets`] convert from (same version as trellis).
pub use ndarray;
pub use optim::{Adagrad, Adam, AdamW, Optimizer, OptimizerOptions, RmsProp, Sgd};
pub use regularizers::Regularizer;
pub use schedules::LrSchedule;

/// Everything a model script needs.
pub mod prelude {
    pub use crate::data;
    pub use crate::ndarray::{array, s, Array1, Array2, Array3, ArrayD, Axis};
    pub use crate::{
        Activation, Adagrad, Adam, AdamW, Add, AdditiveAttention, Attention, AveragePooling1D,
        BatchNormalization, BatchNormalizationConfig, Bidirectional, Call, Callback, Concatenate,
        Conv1D, Conv1DConfig, Crf, CsvLogger, Dense, DenseConfig, Dot, Dropout, EarlyStopping,
        Embedding, EmbeddingConfig, FitOptions, Flatten, GlobalAveragePooling1D,
        GlobalMaxPooling1D, Gru, GruConfig, Input, Inputs, Lambda, LayerNormalization,
        LayerNormalizationConfig, LayerRef, LearningRateScheduler, Loss, Losses, LrSchedule, Lstm,
        LstmConfig, Masking, MaxPooling1D, Merge, Metric, Model, ModelCheckpoint,
        MultiHeadAttention, Multiply, Name, Padding, ReduceLROnPlateau, Regularizer, RepeatVector,
        Reshape, RmsProp, Sequential, Sgd, SimpleRnn, SimpleRnnConfig, Softmax, SpatialDropout1D,
        Subtract, SymTensor, Targets, TerminateOnNaN, TimeDistributed,
    };
}
