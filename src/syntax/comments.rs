//! Comments belong to declarations: the lines above one, and the one at the end of its
//! line. The grammar skips comments; this module finds them again in the source text so
//! that `saddle fmt` keeps every one of them.

use super::ast::Item;

/// Fills `leading_comments`, `trailing_comment` and `blank_line_before` of each item from
/// the source text; returns the comment lines after the last item.
///
/// Comments written inside a multi-line declaration are moved to its leading comments.
pub fn attach_comments(source: &str, items: &mut [Item]) -> Vec<String> {
    let mut cursor = 0;
    for item in items.iter_mut() {
        let start = item.span.start.min(source.len());
        let gap = &source[cursor.min(start)..start];
        let (comments, blank) = gap_comments(gap, cursor == 0);
        item.leading_comments = comments;
        item.blank_line_before = blank;
        let end = item.span.end.min(source.len());
        item.leading_comments
            .extend(inner_comments(&source[start..end]));
        let line_end = source[end..].find('\n').map_or(source.len(), |i| end + i);
        let rest = &source[end..line_end];
        item.trailing_comment = rest
            .find("//")
            .map(|i| rest[i + 2..].trim_end().to_string());
        cursor = line_end;
    }
    let tail = &source[cursor.min(source.len())..];
    gap_comments(tail, false).0
}

/// Comment lines in the text between two declarations, each with its `//` (an empty entry
/// stands for a blank line after a comment), and whether a blank line separates the comment block (or the
/// declaration) from what stands above.
fn gap_comments(gap: &str, at_file_start: bool) -> (Vec<String>, bool) {
    let mut comments = Vec::new();
    let mut blank_before = false;
    // The gap starts at the end of the previous item's line, so its first "line" is empty.
    let mut lines: Vec<&str> = gap.split('\n').collect();
    if !at_file_start && !lines.is_empty() {
        lines.remove(0);
    }
    if lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop(); // indentation of the item's own line
    }
    for line in lines {
        let trimmed = line.trim();
        if trimmed.starts_with("//") {
            // Kept with its `//`, so a bare `//` line stays a comment line and never
            // becomes the empty entry that stands for a blank line.
            comments.push(trimmed.to_string());
        } else if trimmed.is_empty() && comments.is_empty() && !at_file_start {
            blank_before = true;
        } else if trimmed.is_empty() && comments.last().is_some_and(|c: &String| !c.is_empty()) {
            // A blank line after a comment line: kept as an empty entry (printed as a blank
            // line), so paragraph breaks survive formatting.
            comments.push(String::new());
        }
    }
    (comments, blank_before)
}

/// Comments on the lines of a multi-line declaration, except its last line's trailer.
fn inner_comments(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    lines
        .iter()
        .take(n.saturating_sub(1))
        .filter_map(|line| line.find("//").map(|i| line[i..].trim_end().to_string()))
        .collect()
}
