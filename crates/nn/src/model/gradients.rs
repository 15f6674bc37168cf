//! `Model::gradients`: the parameter gradients of the loss on given data, by name (what
//! `tf.GradientTape` gives a Keras user), from the same step graph `fit` trains with.
use super::plans::{values, Runner};
use super::{Inputs, Model, Targets};
use crate::Result;

impl Model {
    /// The gradient of the mean loss over all of `(x, y)` (inference mode: no dropout) with
    /// respect to every parameter, as `(name, values)` in [`Model::param_specs`] order
    /// (each laid out as its parameter). Runs one compiled plan over all the samples at once;
    /// nothing is trained and the model is left as it was.
    pub fn gradients<'x, 'y>(
        &mut self,
        x: impl Into<Inputs<'x>>,
        y: impl Into<Targets<'y>>,
    ) -> Result<Vec<(String, Vec<f32>)>> {
        let (x, y) = (x.into(), y.into());
        let shapes = self.check_data(&x, Some(&y))?;
        let rows: Vec<&[usize]> = shapes.rows.iter().map(Vec::as_slice).collect();
        let mut sg = self.step_graph(shapes.n, &rows, false)?;
        let grads = trellis_autodiff::grad(&mut sg.graph, sg.loss, &sg.params)?;
        let mut outputs = sg.graph.outputs().to_vec();
        outputs.extend(&grads);
        sg.graph.set_outputs(outputs);
        let plan = trellis_jit::compile(&sg.graph, &Default::default())?;
        let mut r = Runner {
            key: (shapes.n, shapes.rows.clone()),
            plan,
            sg,
            pushed: None,
        };
        self.push_weights(&mut r)?;
        let all: Vec<usize> = (0..shapes.n).collect();
        self.feed(&mut r, &x, Some(&y), &all, &shapes, None)?;
        r.plan.run()?;
        let names = self.specs.iter().map(|s| s.name.clone());
        names
            .zip(grads)
            .map(|(name, g)| Ok((name, values(&r.plan, g)?)))
            .collect()
    }
}
