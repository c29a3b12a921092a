//! Symmetric coordinates of the order parameters and their conjugates.
//!
//! The action depends on a kernel only through $\mathrm{sym}(C)$ and on a conjugate only through
//! $\mathrm{sym}(\tilde C)$ (THEORY.md §1), so in the full-matrix variables every Hessian is
//! singular along antisymmetric directions. Solvers therefore work on $\mathrm{vech}$
//! coordinates: a kernel entry is $X=\sum_{\alpha\le\beta}u_{\alpha\beta}B_{\alpha\beta}$ with
//! $B_{\alpha\alpha}=e_{\alpha\alpha}$ and $B_{\alpha\beta}=e_{\alpha\beta}+e_{\beta\alpha}$
//! ($\alpha<\beta$), a mean field $m=\sum_\alpha u_\alpha e_\alpha$. Derivatives in these
//! coordinates are full-matrix derivatives paired with the basis,
//! $\partial S/\partial u_{\alpha\beta}=\langle\nabla S,B_{\alpha\beta}\rangle$ — an off-diagonal
//! pair counts twice (THEORY.md §4.7).

use ndarray::Array2;

use crate::check::ir::{FieldKind, Theory};
use crate::derive::grad::Variable;
use crate::numeric::action::{Owner, Variables};

/// One unknown (a field or conjugate entry) and where its coordinates start.
#[derive(Debug, Clone)]
pub struct Block {
    /// The entry, e.g. `C[2]` or `Ct[2]`.
    pub variable: Variable,
    /// Its name as written, e.g. `Ct[2]`.
    pub name: String,
    /// Whether it is a P×P kernel (else a P-vector).
    pub kernel: bool,
    /// Index of its first coordinate.
    pub start: usize,
}

/// The vech coordinates of a list of unknowns, for P patterns.
#[derive(Debug, Clone)]
pub struct Coordinates {
    /// The unknowns, in order.
    pub blocks: Vec<Block>,
    patterns: usize,
    len: usize,
}

impl Coordinates {
    /// Coordinates of `variables` (field and conjugate entries of `theory`).
    pub fn new(theory: &Theory, variables: &[Variable], patterns: usize) -> Self {
        let mut blocks = Vec::with_capacity(variables.len());
        let mut start = 0;
        for variable in variables {
            let (field, idx, name) = match variable {
                Variable::Field(f, idx) => (*f, idx, theory.fields[*f].name.clone()),
                Variable::Conjugate(c, idx) => (
                    theory.conjugates[*c].of,
                    idx,
                    theory.conjugates[*c].name.clone(),
                ),
            };
            let kernel = theory.fields[field].kind == FieldKind::Kernel;
            blocks.push(Block {
                variable: variable.clone(),
                name: entry_name(&name, idx),
                kernel,
                start,
            });
            start += if kernel {
                patterns * (patterns + 1) / 2
            } else {
                patterns
            };
        }
        Coordinates {
            blocks,
            patterns,
            len: start,
        }
    }

    /// The number of coordinates.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of patterns P.
    pub fn patterns(&self) -> usize {
        self.patterns
    }

    /// The pattern pairs (α, β) of a block's coordinates: the upper triangle row by row for a
    /// kernel, (α, 0) for a mean.
    pub fn pairs(&self, block: usize) -> Vec<(usize, usize)> {
        let p = self.patterns;
        if self.blocks[block].kernel {
            (0..p).flat_map(|a| (a..p).map(move |b| (a, b))).collect()
        } else {
            (0..p).map(|a| (a, 0)).collect()
        }
    }

    /// The basis element of a block's coordinate `(α, β)` as a matrix (P×P or P×1).
    pub fn basis(&self, block: usize, (a, b): (usize, usize)) -> Array2<f64> {
        let p = self.patterns;
        let mut m = Array2::zeros((p, if self.blocks[block].kernel { p } else { 1 }));
        m[[a, b]] = 1.0;
        if self.blocks[block].kernel {
            m[[b, a]] = 1.0;
        }
        m
    }

    /// ⟨M, B⟩ for every basis element B of a block: what a full-matrix gradient `m` is in
    /// these coordinates.
    pub fn pair_with_basis(&self, block: usize, m: &Array2<f64>) -> Vec<f64> {
        self.pairs(block)
            .into_iter()
            .map(|(a, b)| {
                if self.blocks[block].kernel && a != b {
                    m[[a, b]] + m[[b, a]]
                } else {
                    m[[a, b]]
                }
            })
            .collect()
    }

    /// The matrix of a block from its coordinates `u` (the whole coordinate vector).
    pub fn matrix(&self, block: usize, u: &[f64]) -> Array2<f64> {
        let p = self.patterns;
        let start = self.blocks[block].start;
        let kernel = self.blocks[block].kernel;
        let mut m = Array2::zeros((p, if kernel { p } else { 1 }));
        for (k, (a, b)) in self.pairs(block).into_iter().enumerate() {
            m[[a, b]] = u[start + k];
            if kernel {
                m[[b, a]] = u[start + k];
            }
        }
        m
    }

    /// Writes a block's matrix into its coordinates (the upper triangle of a kernel).
    pub fn set_matrix(&self, block: usize, m: &Array2<f64>, u: &mut [f64]) {
        let start = self.blocks[block].start;
        for (k, (a, b)) in self.pairs(block).into_iter().enumerate() {
            u[start + k] = m[[a, b]];
        }
    }

    /// For every coordinate, the evaluator variables its basis element sets to 1 (one for a
    /// diagonal or mean entry, two for an off-diagonal pair); `None` when a block is not among
    /// the evaluator's variables.
    pub fn evaluator_indices(&self, variables: &Variables) -> Option<Vec<Vec<usize>>> {
        let mut out = Vec::with_capacity(self.len);
        for (i, block) in self.blocks.iter().enumerate() {
            let (owner, idx) = match &block.variable {
                Variable::Field(f, idx) => (Owner::Field(*f), idx),
                Variable::Conjugate(c, idx) => (Owner::Conjugate(*c), idx),
            };
            for (a, b) in self.pairs(i) {
                let mut ids = vec![variables.index_of(owner, idx, a, b)?];
                if block.kernel && a != b {
                    ids.push(variables.index_of(owner, idx, b, a)?);
                }
                out.push(ids);
            }
        }
        Some(out)
    }
}

/// `C[1, 2]`, or `C` without indices.
pub fn entry_name(name: &str, indices: &[i64]) -> String {
    if indices.is_empty() {
        return name.to_string();
    }
    let list: Vec<String> = indices.iter().map(i64::to_string).collect();
    format!("{name}[{}]", list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_pairing_counts_off_diagonal_pairs_twice() {
        let source = "theory t\nparam g = 1\nparam L: int = 1\ndata X, Y\nkernel C[l] for l in 0..=L\n\
                      conj Ct[l] of C[l] for l in 1..=L\nC[0] = X X^T\n\
                      action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]))\n";
        let theory = crate::compile(source, "t.action").expect("compiles");
        let c = Coordinates::new(&theory, &[Variable::Field(0, vec![1])], 3);
        assert_eq!(c.len(), 6);
        let m = ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
        // ⟨M, B⟩: diagonal once, each off-diagonal pair as M_ab + M_ba
        assert_eq!(
            c.pair_with_basis(0, &m),
            vec![1.0, 6.0, 10.0, 5.0, 14.0, 9.0]
        );
        let mut u = vec![0.0; 6];
        let sym = ndarray::array![[1.0, 2.0, 3.0], [2.0, 5.0, 6.0], [3.0, 6.0, 9.0]];
        c.set_matrix(0, &sym, &mut u);
        assert_eq!(c.matrix(0, &u), sym);
        assert_eq!(c.basis(0, (0, 2)).sum(), 2.0);
    }
}
