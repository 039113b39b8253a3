//! Gradient hooks ([`Var::register_hook`], PyTorch's `Tensor.register_hook`): closures
//! kept on the tape, by node, that the reverse sweep calls with a value's complete
//! gradient when it reaches that value, and that may replace it.

use crate::float::Float;
use crate::shape::Dims;
use crate::tape::{NodeId, Var};
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::Location;
use std::rc::Rc;

/// A hook's closure: the gradient in, `Some` replacement or `None` to keep it.
type HookFn<T> = dyn Fn(&Tensor<T>) -> Option<Tensor<T>>;

/// One registered hook and the line that registered it (named when its replacement
/// has the wrong shape).
struct Hook<T: Float> {
    f: Rc<HookFn<T>>,
    at: &'static Location<'static>,
}

impl<T: Float> Clone for Hook<T> {
    fn clone(&self) -> Self {
        Hook {
            f: Rc::clone(&self.f),
            at: self.at,
        }
    }
}

/// A tape's hooks, by node, each node's in registration order. Empty on most tapes,
/// so that a sweep checks that once and never looks a node up.
pub(crate) struct Hooks<T: Float> {
    by_node: RefCell<HashMap<NodeId, Vec<Hook<T>>>>,
}

impl<T: Float> Default for Hooks<T> {
    fn default() -> Self {
        Hooks {
            by_node: RefCell::new(HashMap::new()),
        }
    }
}

impl<T: Float> Hooks<T> {
    /// Whether no hook is registered on any node.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_node.borrow().is_empty()
    }

    /// Whether node `id` has a hook.
    pub(crate) fn on(&self, id: NodeId) -> bool {
        self.by_node.borrow().contains_key(&id)
    }

    /// Runs node `id`'s hooks in registration order on its gradient `grad`, each on
    /// what the one before left: the last replacement, or `None` when none replaced it.
    ///
    /// The hooks are cloned out (reference counts) before any runs, so that no borrow
    /// of the map is held while user code runs.
    /// `name` names the node's op, for the message of a wrong-shaped replacement.
    pub(crate) fn run(
        &self,
        id: NodeId,
        grad: &Tensor<T>,
        name: impl FnOnce() -> String,
    ) -> Option<Tensor<T>> {
        let hooks: SmallVec<[Hook<T>; 2]> = match self.by_node.borrow().get(&id) {
            Some(hooks) => hooks.iter().cloned().collect(),
            None => return None,
        };
        let mut replaced: Option<Tensor<T>> = None;
        for hook in &hooks {
            let current = replaced.as_ref().unwrap_or(grad);
            if let Some(g) = (hook.f)(current) {
                if g.shape() != grad.shape() {
                    wrong_shape(hook.at, id, &name(), g.shape(), grad.shape());
                }
                replaced = Some(g);
            }
        }
        replaced
    }

    fn push(&self, id: NodeId, hook: Hook<T>) {
        self.by_node.borrow_mut().entry(id).or_default().push(hook);
    }
}

#[cold]
fn wrong_shape(at: &Location<'_>, id: NodeId, name: &str, got: &[usize], want: &[usize]) -> ! {
    panic!(
        "register_hook: the hook registered at {at} returned a gradient of shape {} for \
         node #{id} ({name}), whose gradient has shape {}; return a tensor of the \
         gradient's shape, or None to keep it",
        Dims(got),
        Dims(want)
    )
}

impl<T: Float> Var<'_, T> {
    /// Registers `hook` to be called with this value's gradient during every reverse
    /// sweep that reaches it (PyTorch's `Tensor.register_hook`). Returning `Some(g)`
    /// replaces the gradient with `g` (of the same shape) for the rest of the sweep;
    /// `None` keeps it. Several hooks on one value run in registration order, each
    /// seeing what the one before left.
    ///
    /// When: the sweep walks the tape from the output down, so a value is reached
    /// after every op that used it has added its contribution. The hook sees the
    /// complete gradient, once, before the value's own op passes it on to its inputs;
    /// a value no gradient reaches is not called. For a leaf ([`crate::Tape::param`])
    /// every consumer comes later on the tape, so this is PyTorch's post-accumulate-grad
    /// point, and a replaced leaf gradient is what `backward` returns for it (a value
    /// marked with [`Var::retain_grad`] keeps the replaced one too).
    ///
    /// Which sweeps: [`Var::backward`], [`Var::backward_with`] and
    /// [`Var::backward_releasing`] run the hooks; so does the recorded sweep of
    /// [`Var::grad`] and [`Var::grad_with`], on the nodes it visits (those through which
    /// the output depends on `wrt`). There the hook sees the gradient's value, and a
    /// replacement enters the tape as a constant: the gradient returned is the
    /// replacement, but differentiating it again sees no dependence through this value
    /// (`None` keeps the recorded gradient, differentiable as usual).
    /// [`crate::func::per_sample`] takes the loop when the cost registers a hook, so each
    /// hook sees one example's gradient.
    ///
    /// The hook is `'static`: it owns what it captures (`move`), and shares state with
    /// the caller through `Rc<Cell<_>>` or `Rc<RefCell<_>>`. It stays on the tape, for
    /// every later sweep, until the tape is dropped.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    ///
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let h = x * 3.0;
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let log = Rc::clone(&seen);
    /// h.register_hook(move |g| {
    ///     log.borrow_mut().push(g.data().to_vec()); // dC/dh, complete
    ///     Some(g * 2.0) // and doubled on its way to x
    /// });
    /// let grads = h.square().sum().backward(); // C = Σ h², dC/dh = 2h
    /// assert_eq!(*seen.borrow(), [vec![6.0, 12.0]]);
    /// assert_eq!(grads[x].data(), &[36.0, 72.0]); // 3 · 2 · dC/dh
    /// ```
    ///
    /// Panics at the caller's line when this value needs no gradient (a constant, or
    /// computed from constants alone); the sweep panics, naming the line that
    /// registered the hook and both shapes, when a replacement's shape differs.
    #[track_caller]
    pub fn register_hook(&self, hook: impl Fn(&Tensor<T>) -> Option<Tensor<T>> + 'static) {
        assert!(
            self.requires_grad(),
            "register_hook: node #{} ({}) needs no gradient (a constant, or computed from \
             constants alone), so no gradient would reach the hook",
            self.id,
            self.tape.nodes()[self.id as usize].name()
        );
        let hook = Hook {
            f: Rc::new(hook),
            at: Location::caller(),
        };
        self.tape.hooks().push(self.id, hook);
    }
}
