//! The lexer: tokens with their line:column, produced on demand (the parser holds one token of
//! lookahead), so that lexing a large text allocates nothing per token but unescaped strings.

use super::parse::{ParseError, Pos};
use super::{is_ident_byte, is_name_byte};
use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok<'a> {
    /// `graph`, `f32`, `kernel_shape`, `com.microsoft.QLinearAdd`, `_`, `inf`, ...
    Ident(&'a str),
    /// `%x` or `%"weird name"`, without the `%`.
    Name(Cow<'a, str>),
    /// A string literal's bytes, unescaped (may be any bytes).
    Str(Cow<'a, [u8]>),
    /// A decimal number as written (`-3`, `1.5`, `1e-05`, `-inf`).
    Num(&'a str),
    /// The digits of `0x…` (possibly none).
    Hex(&'a str),
    /// `#` and 16 hex digits.
    Fingerprint(u64),
    /// `…` or `...`.
    Ellipsis,
    /// One of `( ) [ ] { } , = : * ? .`
    Punct(char),
    Eof,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "'{s}'"),
            Tok::Name(s) => write!(f, "%{}", super::print::name_text(s)),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Num(s) => write!(f, "'{s}'"),
            Tok::Hex(s) => write!(f, "'0x{s}'"),
            Tok::Fingerprint(_) => f.write_str("a fingerprint"),
            Tok::Ellipsis => f.write_str("'…'"),
            Tok::Punct(c) => write!(f, "'{c}'"),
            Tok::Eof => f.write_str("the end of the text"),
        }
    }
}

#[derive(Clone)]
pub(super) struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    i: usize,
    line: u32,
    col: u32,
}

fn err(pos: Pos, msg: impl Into<String>) -> ParseError {
    ParseError::Syntax { pos, msg: msg.into() }
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer { src, i: 0, line: 1, col: 1 }
    }

    pub fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    /// Byte offset of the next character (for slicing the source).
    pub fn offset(&self) -> usize {
        self.i
    }

    pub fn src(&self) -> &'a str {
        self.src
    }

    fn rest(&self) -> &'a str {
        &self.src[self.i..]
    }

    fn byte(&self, k: usize) -> Option<u8> {
        self.src.as_bytes().get(self.i + k).copied()
    }

    /// Advances over `n` bytes known to be ASCII and not line breaks.
    fn skip_ascii(&mut self, n: usize) -> &'a str {
        let s = &self.src[self.i..self.i + n];
        self.i += n;
        self.col += n as u32;
        s
    }

    fn bump_char(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// The longest run of ASCII bytes satisfying `f`, consumed.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let n = self.rest().bytes().take_while(|&b| f(b)).count();
        self.skip_ascii(n)
    }

    fn skip_trivia(&mut self) {
        loop {
            let rest = self.rest();
            if rest.starts_with("//") {
                let n = rest.find('\n').unwrap_or(rest.len());
                // A comment may hold any characters: count them for the column.
                for _ in rest[..n].chars() {
                    self.bump_char();
                }
            } else if rest.chars().next().is_some_and(char::is_whitespace) {
                self.bump_char();
            } else {
                return;
            }
        }
    }

    /// The next token, its position and its byte offset.
    pub fn next_token(&mut self) -> Result<(Tok<'a>, Pos, usize), ParseError> {
        self.skip_trivia();
        let (pos, start) = (self.pos(), self.i);
        let rest = self.rest();
        let Some(c) = rest.chars().next() else { return Ok((Tok::Eof, pos, start)) };
        let tok = match c {
            '%' => {
                self.skip_ascii(1);
                self.name(pos)?
            }
            '"' => Tok::Str(self.string()?),
            '#' => self.fingerprint(pos)?,
            '…' => {
                self.bump_char();
                Tok::Ellipsis
            }
            '.' if rest.starts_with("...") => {
                self.skip_ascii(3);
                Tok::Ellipsis
            }
            '0'..='9' | '-' => self.number(pos)?,
            c if c.is_ascii_alphabetic() || c == '_' => Tok::Ident(self.take_while(is_ident_byte)),
            '(' | ')' | '[' | ']' | '{' | '}' | ',' | '=' | ':' | '*' | '?' | '.' => {
                self.skip_ascii(1);
                Tok::Punct(c)
            }
            c => return Err(err(pos, format!("unexpected character {c:?}"))),
        };
        Ok((tok, pos, start))
    }

    fn name(&mut self, pos: Pos) -> Result<Tok<'a>, ParseError> {
        if self.byte(0) == Some(b'"') {
            let start = self.pos();
            let bytes = self.string()?;
            return match bytes {
                Cow::Borrowed(b) => Ok(Tok::Name(Cow::Borrowed(std::str::from_utf8(b).unwrap()))),
                Cow::Owned(b) => String::from_utf8(b)
                    .map(|s| Tok::Name(Cow::Owned(s)))
                    .map_err(|_| err(start, "a name must be valid UTF-8")),
            };
        }
        // A bare name never ends in ':', so that `%x: f32[]` reads the name `x`.
        let run = self.rest().bytes().take_while(|&b| is_name_byte(b)).count();
        let n = self.rest()[..run].trim_end_matches(':').len();
        if n == 0 {
            return Err(err(pos, "expected a name after '%'"));
        }
        Ok(Tok::Name(Cow::Borrowed(self.skip_ascii(n))))
    }

    /// A string literal, the opening quote next. Borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, [u8]>, ParseError> {
        let start = self.pos();
        self.skip_ascii(1);
        let body = self.rest();
        if let Some(end) = body.find(['"', '\\', '\n']) {
            if body.as_bytes()[end] == b'"' {
                for _ in body[..end].chars() {
                    self.bump_char();
                }
                self.skip_ascii(1);
                return Ok(Cow::Borrowed(&body.as_bytes()[..end]));
            }
        }
        let mut out = Vec::new();
        loop {
            let at = self.pos();
            match self.bump_char() {
                None | Some('\n') => return Err(err(start, "unterminated string")),
                Some('"') => return Ok(Cow::Owned(out)),
                Some('\\') => self.escape(at, &mut out)?,
                Some(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
    }

    fn escape(&mut self, at: Pos, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let hex_digits = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        match self.bump_char() {
            Some('\\') => out.push(b'\\'),
            Some('"') => out.push(b'"'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('r') => out.push(b'\r'),
            Some('0') => out.push(0),
            Some('x') => {
                let digits = self.rest().get(..2).filter(|d| hex_digits(d));
                let d = digits.ok_or_else(|| err(at, "expected two hex digits after '\\x'"))?;
                out.push(u8::from_str_radix(d, 16).unwrap());
                self.skip_ascii(2);
            }
            Some('u') => {
                let rest = self.rest();
                let close = rest.find('}').filter(|&k| rest.starts_with('{') && (2..=7).contains(&k));
                let c = close
                    .filter(|&k| hex_digits(&rest[1..k]))
                    .and_then(|k| char::from_u32(u32::from_str_radix(&rest[1..k], 16).ok()?))
                    .ok_or_else(|| err(at, "expected a Unicode scalar value like '\\u{2026}'"))?;
                self.skip_ascii(close.unwrap() + 1);
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            _ => return Err(err(at, "unknown escape (use \\\\, \\\", \\n, \\t, \\r, \\0, \\xNN or \\u{…})")),
        }
        Ok(())
    }

    fn fingerprint(&mut self, pos: Pos) -> Result<Tok<'a>, ParseError> {
        self.skip_ascii(1);
        let digits = self.take_while(|b| b.is_ascii_alphanumeric());
        match u64::from_str_radix(digits, 16) {
            Ok(v) if digits.len() == 16 => Ok(Tok::Fingerprint(v)),
            _ => Err(err(pos, "a fingerprint is '#' and 16 hex digits")),
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Tok<'a>, ParseError> {
        let start = self.i;
        let digits = |s: &mut Self| s.take_while(|b| b.is_ascii_digit()).len();
        if self.byte(0) == Some(b'-') {
            self.skip_ascii(1);
            if self.rest().starts_with("inf") {
                self.skip_ascii(3);
            } else if !self.byte(0).is_some_and(|b| b.is_ascii_digit()) {
                return Err(err(pos, "expected a number after '-'"));
            }
        }
        if self.byte(0) == Some(b'0') && matches!(self.byte(1), Some(b'x' | b'X')) {
            if self.src.as_bytes()[start] == b'-' {
                return Err(err(pos, "hex literals have no sign"));
            }
            self.skip_ascii(2);
            let hex = self.take_while(|b| b.is_ascii_hexdigit());
            return self.end_of_number(pos, Tok::Hex(hex));
        }
        digits(self);
        if self.byte(0) == Some(b'.') && self.byte(1) != Some(b'.') {
            self.skip_ascii(1);
            digits(self);
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            self.skip_ascii(1);
            if matches!(self.byte(0), Some(b'+' | b'-')) {
                self.skip_ascii(1);
            }
            if digits(self) == 0 {
                return Err(err(pos, "expected digits in the exponent"));
            }
        }
        let text = &self.src[start..self.i];
        self.end_of_number(pos, Tok::Num(text))
    }

    fn end_of_number(&self, pos: Pos, tok: Tok<'a>) -> Result<Tok<'a>, ParseError> {
        match self.byte(0) {
            Some(b) if b.is_ascii_alphanumeric() || b == b'_' => Err(err(pos, "invalid number")),
            _ => Ok(tok),
        }
    }
}
