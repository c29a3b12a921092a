//! Names as a physicist writes them: `kappa` → κ, `g0` → g₀, `Theta` → Θ.

/// Greek letter names with their Unicode letters and LaTeX commands.
const GREEK: &[(&str, &str, &str)] = &[
    ("alpha", "α", "\\alpha"),
    ("beta", "β", "\\beta"),
    ("gamma", "γ", "\\gamma"),
    ("delta", "δ", "\\delta"),
    ("epsilon", "ε", "\\epsilon"),
    ("zeta", "ζ", "\\zeta"),
    ("eta", "η", "\\eta"),
    ("theta", "θ", "\\theta"),
    ("iota", "ι", "\\iota"),
    ("kappa", "κ", "\\kappa"),
    ("lambda", "λ", "\\lambda"),
    ("mu", "μ", "\\mu"),
    ("nu", "ν", "\\nu"),
    ("xi", "ξ", "\\xi"),
    ("rho", "ρ", "\\rho"),
    ("sigma", "σ", "\\sigma"),
    ("tau", "τ", "\\tau"),
    ("upsilon", "υ", "\\upsilon"),
    ("phi", "φ", "\\phi"),
    ("chi", "χ", "\\chi"),
    ("psi", "ψ", "\\psi"),
    ("omega", "ω", "\\omega"),
    ("Gamma", "Γ", "\\Gamma"),
    ("Delta", "Δ", "\\Delta"),
    ("Theta", "Θ", "\\Theta"),
    ("Lambda", "Λ", "\\Lambda"),
    ("Xi", "Ξ", "\\Xi"),
    ("Pi", "Π", "\\Pi"),
    ("Sigma", "Σ", "\\Sigma"),
    ("Phi", "Φ", "\\Phi"),
    ("Psi", "Ψ", "\\Psi"),
    ("Omega", "Ω", "\\Omega"),
    ("pi", "π", "\\pi"),
];

/// A name split into its letters and a trailing run of digits (`gb0` → `gb`, `0`).
pub fn split_digits(name: &str) -> (&str, &str) {
    let cut = name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if cut == 0 {
        (name, "")
    } else {
        (&name[..cut], &name[cut..])
    }
}

/// The Greek letter (Unicode, LaTeX) a word names, if it does.
pub fn greek(word: &str) -> Option<(&'static str, &'static str)> {
    GREEK
        .iter()
        .find(|(w, _, _)| *w == word)
        .map(|(_, u, l)| (*u, *l))
}

/// Unicode subscript digits.
pub fn subscript_digits(digits: &str) -> String {
    digits
        .chars()
        .map(|c| {
            c.to_digit(10).map_or(c, |d| {
                ['₀', '₁', '₂', '₃', '₄', '₅', '₆', '₇', '₈', '₉'][d as usize]
            })
        })
        .collect()
}

/// The Unicode superscript form of `text`, if every character has one (`T` has none here:
/// its superscript is the transpose sign).
pub fn superscript(text: &str) -> Option<String> {
    text.chars()
        .filter(|c| *c != ' ')
        .map(|c| {
            Some(match c {
                '0' => '⁰',
                '1' => '¹',
                '2' => '²',
                '3' => '³',
                '4' => '⁴',
                '5' => '⁵',
                '6' => '⁶',
                '7' => '⁷',
                '8' => '⁸',
                '9' => '⁹',
                '+' => '⁺',
                '-' | '−' => '⁻',
                '(' => '⁽',
                ')' => '⁾',
                ',' => '˒',
                'a' => 'ᵃ',
                'b' => 'ᵇ',
                'c' => 'ᶜ',
                'd' => 'ᵈ',
                'e' => 'ᵉ',
                'f' => 'ᶠ',
                'g' => 'ᵍ',
                'h' => 'ʰ',
                'i' => 'ⁱ',
                'j' => 'ʲ',
                'k' => 'ᵏ',
                'l' => 'ˡ',
                'm' => 'ᵐ',
                'n' => 'ⁿ',
                'o' => 'ᵒ',
                'p' => 'ᵖ',
                'r' => 'ʳ',
                's' => 'ˢ',
                't' => 'ᵗ',
                'u' => 'ᵘ',
                'v' => 'ᵛ',
                'w' => 'ʷ',
                'x' => 'ˣ',
                'y' => 'ʸ',
                'z' => 'ᶻ',
                'A' => 'ᴬ',
                'B' => 'ᴮ',
                'D' => 'ᴰ',
                'E' => 'ᴱ',
                'G' => 'ᴳ',
                'H' => 'ᴴ',
                'I' => 'ᴵ',
                'J' => 'ᴶ',
                'K' => 'ᴷ',
                'L' => 'ᴸ',
                'M' => 'ᴹ',
                'N' => 'ᴺ',
                'O' => 'ᴼ',
                'P' => 'ᴾ',
                'R' => 'ᴿ',
                'U' => 'ᵁ',
                'V' => 'ⱽ',
                'W' => 'ᵂ',
                _ => return None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_map() {
        assert_eq!(split_digits("gb0"), ("gb", "0"));
        assert_eq!(split_digits("42"), ("42", ""));
        assert_eq!(greek("kappa"), Some(("κ", "\\kappa")));
        assert_eq!(subscript_digits("10"), "₁₀");
        assert_eq!(superscript("l-1").as_deref(), Some("ˡ⁻¹"));
        assert_eq!(superscript("q"), None);
    }
}
