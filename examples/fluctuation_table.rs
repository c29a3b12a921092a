//! Deep against recurrent at finite width (THEORY.md §6): N·Var of the readout kernel
//! (`C[L]` of `deep_erf`, `C[T,T]` of `recurrent_erf`, T = L) against N and T, from the
//! one-loop theory of each (the layered Hessian; the recurrent four-point functions across
//! times) and from simulated networks (independent draws, each N·Var with its standard error).
//! The two networks have the same NNGP kernels (checked here); a bias shared over time makes
//! the recurrent one fluctuate more already at one loop, without it the one-loop values
//! agree and the recurrent excess is of higher order in 1/N.
//!
//! `cargo run --release --example fluctuation_table [SAMPLES] [GB]` (defaults 2000, 0.3).

use std::error::Error;

use ndarray::{Array2, array};
use saddle::simulate::prior::sample_prior;
use saddle::simulate::{Network, RecurrentNetwork, RecurrentSimulator, Simulator};
use saddle::solve::nngp::{NngpSettings, nngp_kernels};
use saddle::solve::one_loop::prior_variances;

/// N·Var of the readout kernel's entries (1,1) and (1,2): (deep, recurrent).
pub type Columns<T> = ([T; 2], [T; 2]);

const ENTRIES: [(usize, usize); 2] = [(0, 0), (0, 1)];

fn theory(file: &str) -> Result<saddle::Theory, Box<dyn Error>> {
    let source = std::fs::read_to_string(file)?;
    Ok(saddle::compile(&source, file)?)
}

fn overrides(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

fn deep_set(n: usize, t: usize, gb: f64) -> Vec<(String, f64)> {
    overrides(&[
        ("N", n as f64),
        ("L", t as f64),
        ("g", 1.5),
        ("gb", gb),
        ("gb0", gb),
        ("g0", 1.0),
    ])
}

fn recurrent_set(n: usize, t: usize, gb: f64) -> Vec<(String, f64)> {
    overrides(&[
        ("N", n as f64),
        ("T", t as f64),
        ("g", 1.5),
        ("gb", gb),
        ("gu", 1.0),
    ])
}

fn settings(overrides: Vec<(String, f64)>) -> NngpSettings {
    NngpSettings {
        overrides,
        ..NngpSettings::default()
    }
}

/// The one-loop N·Var at depth `t` (independent of N): the deep network's from the layered
/// Hessian, the recurrent one's from its four-point functions across times. Checks first
/// that the two have the same NNGP readout kernel.
pub fn one_loop_columns(
    x: &Array2<f64>,
    t: usize,
    gb: f64,
) -> Result<Columns<f64>, Box<dyn Error>> {
    let deep = theory("examples/deep_erf.action")?;
    let layered = prior_variances(&deep, x.view(), &settings(deep_set(2, t, gb)), 48)?;
    let readout = format!("C[{t}]");
    let deep_one = &layered
        .iter()
        .find(|v| v.name == readout)
        .ok_or("no deep readout")?
        .n_variance;
    let recurrent = theory("examples/recurrent_erf.action")?;
    let set = recurrent_set(2, t, gb);
    let nngp = nngp_kernels(&recurrent, x.view(), None, &settings(set.clone()))?;
    let params = recurrent.bind(&set)?;
    let network = RecurrentNetwork::new(&recurrent, &params)?;
    let simulator = RecurrentSimulator::new(&network, x.view())?;
    let one = simulator.one_loop(&nngp, 20)?;
    let recurrent_one = one.block_variance(t, t).ok_or("no recurrent readout")?;
    let deep_nngp = nngp_kernels(&deep, x.view(), None, &settings(deep_set(2, t, gb)))?;
    let field = deep.field("C").ok_or("C")?;
    let (a, b) = (
        &deep_nngp.entries[&(field, vec![t as i64])],
        &nngp.entries[&(network.family, vec![t as i64, t as i64])],
    );
    if a.iter().zip(b).any(|(u, v)| (u - v).abs() > 1e-12) {
        return Err(format!("the NNGP kernels differ at T = {t}: {a} vs {b}").into());
    }
    Ok((
        ENTRIES.map(|e| deep_one[e]),
        ENTRIES.map(|e| recurrent_one[e]),
    ))
}

/// N·Var and its standard error from `samples` networks of width `n` of each kind.
pub fn simulated_columns(
    x: &Array2<f64>,
    n: usize,
    t: usize,
    gb: f64,
    samples: usize,
    seed: u64,
) -> Result<Columns<(f64, f64)>, Box<dyn Error>> {
    let nf = n as f64;
    let column = |sample: &saddle::simulate::prior::PriorSample, key| {
        let stats = &sample
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or("no such entry drawn")?
            .1;
        Ok::<_, Box<dyn Error>>(
            ENTRIES.map(|e| (nf * stats.variance[e], nf * stats.variance_std_error[e])),
        )
    };
    let deep = theory("examples/deep_erf.action")?;
    let params = deep.bind(&deep_set(n, t, gb))?;
    let network = Network::new(&deep, &params)?;
    let simulator = Simulator::new(&network, x.view())?;
    let sample = sample_prior(&simulator, samples, seed, &|_| {})?;
    let deep_column = column(&sample, (deep.field("C").ok_or("C")?, vec![t as i64]))?;

    let recurrent = theory("examples/recurrent_erf.action")?;
    let params = recurrent.bind(&recurrent_set(n, t, gb))?;
    let network = RecurrentNetwork::new(&recurrent, &params)?;
    let simulator = RecurrentSimulator::new(&network, x.view())?;
    let sample = sample_prior(&simulator, samples, seed, &|_| {})?;
    let recurrent_column = column(&sample, (network.family, vec![t as i64, t as i64]))?;
    Ok((deep_column, recurrent_column))
}

/// THEORY.md T13's patterns: with g0 = gu = 1 and d = 2 the input kernel is
/// Q = [[1, 0.6], [0.6, 1.5]].
pub fn t13_patterns() -> Array2<f64> {
    let s = 2f64.sqrt();
    array![[s, 0.0], [0.6 * s, (1.5f64 - 0.36).sqrt() * s]]
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let samples: usize = std::env::args().nth(1).map_or(Ok(2000), |a| a.parse())?;
    let gb: f64 = std::env::args().nth(2).map_or(Ok(0.3), |a| a.parse())?;
    let x = t13_patterns();
    println!(
        "N·Var of the readout kernel, unit-slope erf, g = 1.5, g_b = {gb} (deep: per layer; \
         recurrent: shared over time), {samples} networks per point; N = ∞: one loop"
    );
    println!(
        "{:>3} {:>4} | {:>16} {:>16} | {:>16} {:>16}",
        "T", "N", "deep (1,1)", "recurrent (1,1)", "deep (1,2)", "recurrent (1,2)"
    );
    let sim = |(v, se): (f64, f64)| format!("{v:.4} ± {se:.4}");
    for t in [2, 4, 8] {
        let (deep, recurrent) = one_loop_columns(&x, t, gb)?;
        println!(
            "{t:>3} {:>4} | {:>16.4} {:>16.4} | {:>16.4} {:>16.4}",
            "∞", deep[0], recurrent[0], deep[1], recurrent[1]
        );
        for n in [50, 100, 200, 400, 800] {
            let (d, r) = simulated_columns(&x, n, t, gb, samples, 7)?;
            println!(
                "{t:>3} {n:>4} | {:>16} {:>16} | {:>16} {:>16}",
                sim(d[0]),
                sim(r[0]),
                sim(d[1]),
                sim(r[1])
            );
        }
    }
    Ok(())
}
