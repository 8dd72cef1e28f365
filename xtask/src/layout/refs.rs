//! The references a Rust source file makes to its crate's top-level modules: `crate::X` anywhere
//! in code, `use crate::{X, Y::z}` trees, and `super::` paths that climb to the crate root.
//! Comments, string and character literals are ignored; inline `mod name { .. }` blocks are
//! followed so that `super` means what the compiler says it means. A lexer, not a parser: enough
//! for paths, which is all the layout check needs.

/// A reference to a top-level module (or a root item) of the crate: its name and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootRef {
    pub line: usize,
    pub name: String,
}

/// Every reference `source` makes to the crate root's children. `module` is the file's module
/// path from the crate root (`["state", "apply"]` for `tracer/src/state/apply.rs`, `["state"]`
/// for `state/mod.rs`, empty for `lib.rs`).
pub fn root_refs(source: &str, module: &[&str]) -> Vec<RootRef> {
    let tokens = tokens(&strip(source));
    let mut out = Vec::new();
    // Open braces: Some(name) for an inline module's body.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let here: Vec<&str> = module
            .iter()
            .copied()
            .chain(braces.iter().flatten().map(String::as_str))
            .collect();
        let t = &tokens[i];
        match t.text.as_str() {
            "{" => {
                let inline_mod = i >= 2 && tokens[i - 2].text == "mod";
                braces.push(inline_mod.then(|| tokens[i - 1].text.clone()));
            }
            "}" => {
                braces.pop();
            }
            "use" => {
                let mut paths = Vec::new();
                let end = use_tree(&tokens, i + 1, true, &[], &mut paths);
                for (line, path) in paths {
                    if let Some(name) = resolve(&path, &here) {
                        out.push(RootRef { line, name });
                    }
                }
                i = end;
                continue;
            }
            "crate" | "super" => {
                let after_path = i > 0 && matches!(tokens[i - 1].text.as_str(), "::" | "$");
                if !after_path {
                    let (path, end) = plain_path(&tokens, i);
                    if let Some(name) = resolve(&path, &here) {
                        out.push(RootRef { line: t.line, name });
                    }
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `path` made absolute from `module` (`crate`, `super`, `self` resolved): its first segment,
/// if it names something at the root. Paths that start elsewhere (another crate, a local item)
/// and paths that stop at the root itself (`use super::*` from a room's `mod.rs`) give `None`.
fn resolve(path: &[String], module: &[&str]) -> Option<String> {
    let mut abs: Vec<&str> = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super") | Some("self") => module.to_vec(),
        _ => return None,
    };
    let mut rest = if path.first().is_some_and(|s| s == "crate") {
        &path[1..]
    } else {
        path
    };
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                abs.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    let name = abs.first().copied().or(rest.first().map(String::as_str))?;
    (name != "*").then(|| name.to_owned())
}

/// A path in code from token `i`: segments joined by `::`. Returns the segments and the index
/// after them.
fn plain_path(tokens: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut path = vec![tokens[i].text.clone()];
    while i + 2 < tokens.len() && tokens[i + 1].text == "::" && is_ident(&tokens[i + 2].text) {
        path.push(tokens[i + 2].text.clone());
        i += 2;
    }
    (path, i + 1)
}

/// Parses a use tree from token `i` with `prefix` (`top`: the whole declaration, not a group's
/// member), pushing each leaf's full path and line.
/// Returns the index after the tree (after the `;` at the top level).
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    top: bool,
    prefix: &[String],
    out: &mut Vec<(usize, Vec<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    let mut line = tokens.get(i).map_or(0, |t| t.line);
    if tokens.get(i).is_some_and(|t| t.text == "::") {
        i += 1;
    }
    while let Some(t) = tokens.get(i) {
        match t.text.as_str() {
            "{" => {
                i += 1;
                while let Some(t) = tokens.get(i) {
                    match t.text.as_str() {
                        "}" => {
                            i += 1;
                            break;
                        }
                        "," => i += 1,
                        _ => i = use_tree(tokens, i, false, &path, out),
                    }
                }
                return skip_to_end(tokens, i, top);
            }
            "*" => {
                path.push("*".into());
                out.push((line, path));
                return skip_to_end(tokens, i + 1, top);
            }
            "::" => i += 1,
            text if is_ident(text) => {
                if path.len() == prefix.len() {
                    line = t.line;
                }
                path.push(text.to_owned());
                i += 1;
                if tokens.get(i).is_some_and(|t| t.text == "as") {
                    i += 2;
                }
                if tokens.get(i).is_none_or(|t| t.text != "::") {
                    out.push((line, path));
                    return skip_to_end(tokens, i, top);
                }
            }
            _ => return skip_to_end(tokens, i, top),
        }
    }
    i
}

/// At the top level of a use declaration, the index after its `;`; inside braces, `i` itself.
fn skip_to_end(tokens: &[Token], mut i: usize, top: bool) -> usize {
    if top {
        while tokens.get(i).is_some_and(|t| t.text != ";") {
            i += 1;
        }
        i += 1;
    }
    i
}

fn is_ident(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

struct Token {
    text: String,
    line: usize,
}

/// Identifiers (`r#` dropped), `::`, and single punctuation characters, with their lines.
fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            if c == 'r' && chars.get(i + 1) == Some(&'#') {
                i += 2;
            }
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token { text: c.into(), line });
            i += 1;
        }
    }
    out
}

/// `source` with comments and string and character literals blanked (newlines kept).
pub fn strip(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, part: &[char]| {
        out.extend(part.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let mut i = 0;
    while i < s.len() {
        let start = i;
        let at = |k: usize| s.get(k).copied();
        if at(i) == Some('/') && at(i + 1) == Some('/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if at(i) == Some('/') && at(i + 1) == Some('*') {
            let mut depth = 0;
            while i < s.len() {
                if at(i) == Some('/') && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if at(i) == Some('*') && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&s, i) {
            // r"..", r#".."#, br#".."#: ends at a quote followed by as many hashes.
            i = s[i..].iter().position(|&c| c == '"').map_or(s.len(), |p| i + p + 1);
            while i < s.len() && !(s[i] == '"' && (1..=hashes).all(|k| at(i + k) == Some('#'))) {
                i += 1;
            }
            i = (i + 1 + hashes).min(s.len());
        } else if at(i) == Some('"') || (at(i) == Some('b') && at(i + 1) == Some('"') && !ident_before(&s, i)) {
            i = s[i..].iter().position(|&c| c == '"').map_or(s.len(), |p| i + p + 1);
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(s.len());
        } else if at(i) == Some('\'') && (at(i + 1) == Some('\\') || at(i + 2) == Some('\'')) {
            // A character literal ('x', '\n', '\u{1F600}'); otherwise a lifetime.
            i += 1;
            while i < s.len() && s[i] != '\'' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(s.len());
        } else {
            out.push(s[i]);
            i += 1;
            continue;
        }
        blank(&mut out, &s[start..i.min(s.len())]);
    }
    out
}

/// The number of `#`s of a raw string starting at `i` (`r"`, `r#"`, `br##"`), if one does.
fn raw_string_start(s: &[char], i: usize) -> Option<usize> {
    if ident_before(s, i) {
        return None;
    }
    let mut k = i;
    if s.get(k) == Some(&'b') {
        k += 1;
    }
    if s.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = s[k..].iter().take_while(|&&c| c == '#').count();
    (s.get(k + hashes) == Some(&'"')).then_some(hashes)
}

/// Whether the character before `i` continues an identifier (so `s[i]` starts no literal).
fn ident_before(s: &[char], i: usize) -> bool {
    i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_')
}

#[cfg(test)]
mod tests;
