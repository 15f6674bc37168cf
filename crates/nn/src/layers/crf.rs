//! `Crf(num_tags)`: a linear-chain conditional random field over per-step tag scores, the last
//! layer of a BiLSTM-CRF tagger (NER, chunking, semantic role labelling). It takes the scores
//! (emissions) `[B, T, K]` of a `Dense(K)` and outputs the best tag sequence (Viterbi), one-hot
//! `[B, T, K]`, so `predict` returns tags and accuracy counts the decoded path; it trains with
//! [`Loss::Crf`](crate::losses::Loss::Crf), the sequences' negative log-likelihood, which
//! scores whole paths instead of each step alone. The algorithms are `trellis_ir::crf`'s
//! (pytorch-crf's semantics); padding steps (a mask from the embedding) are skipped.
use std::any::Any;

use trellis_ir::crf::{crf_decode, CrfWeights};
use trellis_ir::{Graph, NodeId};

use super::recurrent::check_sequence;
use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::init::Init;
use crate::{NnError, Result};

/// A CRF over `num_tags` tags. Parameters (pytorch-crf's names, initialised uniform in
/// `[-0.1, 0.1]` as there): `{module}.transitions [K, K]` (`[i, j]`: tag `i` followed by tag
/// `j`), `{module}.start_transitions [K]`, `{module}.end_transitions [K]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Crf {
    pub num_tags: usize,
}

impl Crf {
    pub fn new(num_tags: usize) -> Self {
        Crf { num_tags }
    }
}

/// What the CRF loss reads from a [`Crf`] output: the emissions (batch-major `[B, T, K]`,
/// whatever the output's layout) and the CRF's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrfHead {
    pub emissions: NodeId,
    pub weights: CrfWeights,
}

impl Layer for Crf {
    fn kind(&self) -> &'static str {
        "crf"
    }
    fn params(&self, scope: &Scope, _: usize) -> Vec<ParamSpec> {
        let k = self.num_tags;
        let init = Init::Uniform(0.1);
        let m = &scope.module;
        vec![
            ParamSpec::new(format!("{m}.transitions"), &[k, k], init.clone()),
            ParamSpec::new(format!("{m}.start_transitions"), &[k], init.clone()),
            ParamSpec::new(format!("{m}.end_transitions"), &[k], init),
        ]
    }
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        check_sequence(g, "crf", &x)?;
        let width = *g.ty(x.node).dims().last().expect("rank 3");
        if width != self.num_tags || self.num_tags == 0 {
            return Err(NnError::Shape(format!(
                "crf: takes the scores of its {} tags at every step (a Dense({}) before it), \
                 got {width} features per step",
                self.num_tags, self.num_tags
            )));
        }
        let x = x.batch_major(g)?;
        let weights = CrfWeights {
            transitions: params[0],
            start: params[1],
            end: params[2],
        };
        let decoded = crf_decode(g, x.node, x.mask, &weights)?;
        Ok(Act {
            crf: Some(CrfHead {
                emissions: x.node,
                weights,
            }),
            ..x.with_node(decoded)
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Crf(self.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
