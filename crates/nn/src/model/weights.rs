//! The model's weights on the host, with a version that changes on every edit, so that a
//! plan which already holds this version is not sent the same weights again (a batch-1
//! `predict` spent a millisecond copying the embedding table into its plan on every call).

/// Each parameter's values, in `specs` order. Read through `Deref`; every write goes through
/// [`Weights::edit`] or [`Weights::replace`], which move the version on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Weights {
    values: Vec<Vec<f32>>,
    version: u64,
}

impl Weights {
    /// The values, to change: the version moves on whether or not they do.
    pub(crate) fn edit(&mut self) -> &mut Vec<Vec<f32>> {
        self.version += 1;
        &mut self.values
    }

    pub(crate) fn replace(&mut self, values: Vec<Vec<f32>>) {
        *self.edit() = values;
    }

    /// Changes with every edit: equal versions mean equal values.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

impl std::ops::Deref for Weights {
    type Target = Vec<Vec<f32>>;
    fn deref(&self) -> &Vec<Vec<f32>> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::Weights;

    #[test]
    fn every_edit_moves_the_version() {
        let mut w = Weights::default();
        let v0 = w.version();
        w.replace(vec![vec![1.0]]);
        let v1 = w.version();
        w.edit()[0][0] = 2.0;
        assert!(v0 < v1 && v1 < w.version());
        assert_eq!(w[0], [2.0]);
    }
}
