//! The small expression language of coherence rules and indicators.
//!
//! Expressions are written in the definition file and compiled once, when it is loaded, into
//! a tree whose item references are indices into the answer set: evaluating a questionnaire
//! then does no lookup by name. Values are numbers (`f64`): yes/no is 1/0, a date is its
//! Julian day, so "dates ordered" is a plain comparison. A missing input makes the result
//! unknown (`None`), never NaN. Dates are compared with `year_end`, the last day of the year
//! the data describe, never with the day of the evaluation: a questionnaire's verdict does
//! not change with the calendar.
//!
//! A quantity (not a date) answered "not applicable" reads as 0 (the quantity does not exist for the
//! structure: a line of a total, a mode it does not run); blank and "unknown" stay
//! unknown. A computed item (an item with a `formula`) reads as its formula.
//! `if_offered(capacity, x)` is 0 when the capacity of a mode of care is 0, blank or not
//! applicable (the structure does not offer it), and `x` otherwise. `prev(item)` is the
//! item's value (or a computed item's formula) on the previous campaign's answers, unknown
//! when there are none.
//!
//! ```text
//! expr   := or
//! or     := and ("or" and)*
//! and    := not ("and" not)*
//! not    := "not" not | cmp
//! cmp    := add (("<=" | ">=" | "<" | ">" | "==" | "!=") add)?
//! add    := mul (("+" | "-") mul)*
//! mul    := unary (("*" | "/") unary)*
//! unary  := "-" unary | atom
//! atom   := number | item | "year_end" | func "(" args ")" | "(" expr ")"
//! func   := sum | min | max | abs | if_offered | present | has | prev
//! ```
//! `item == 'code'` compares a single-choice item with one of its codes; `has(item, 'code')`
//! tests a multiple-choice item.

use super::answer::{AnswerSet, Slot, Value};
use super::definition::{ItemDef, ItemType};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Num(f64),
    Item(u16),
    YearEnd,
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Sum(Vec<Node>),
    Min(Vec<Node>),
    Max(Vec<Node>),
    Abs(Box<Node>),
    /// 0 when the capacity (first) is 0 or unknown, else the value (second).
    IfOffered(Box<Node>, Box<Node>),
    /// The item's value in the previous campaign's answers.
    Prev(u16),
    /// A computed item's formula evaluated on the previous campaign's answers.
    PrevFormula(Box<Node>),
    Present(u16),
    /// Single choice equal to the code with this index (negated for `!=`).
    ChoiceIs(u16, u16, bool),
    /// Multiple choice containing the code with this index.
    Has(u16, u16),
}

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("unexpected character `{0}`")]
    Character(char),
    #[error("unexpected end of expression")]
    End,
    #[error("unexpected `{0}`")]
    Unexpected(String),
    #[error("unknown item `{0}`")]
    UnknownItem(String),
    #[error("item `{item}` is {kind} and cannot be used {usage}")]
    WrongType {
        item: String,
        kind: &'static str,
        usage: &'static str,
    },
    #[error("`{code}` is not a choice of `{item}`")]
    UnknownChoice { item: String, code: String },
    #[error("{0}")]
    Arity(String),
    #[error("computed item `{0}` is used before its formula is defined")]
    ComputedLater(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Ident(String),
    Str(String),
    Op(&'static str),
}

fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_')
            {
                i += 1;
            }
            let text: String = src[start..i].chars().filter(|c| *c != '_').collect();
            tokens.push(Token::Num(
                text.parse()
                    .map_err(|_| ExprError::Unexpected(text.clone()))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token::Ident(src[start..i].to_string()));
        } else if c == '\'' {
            let end = src[i + 1..].find('\'').ok_or(ExprError::End)?;
            tokens.push(Token::Str(src[i + 1..i + 1 + end].to_string()));
            i += end + 2;
        } else {
            let two = src.get(i..i + 2).unwrap_or("");
            let op = ["<=", ">=", "==", "!="].into_iter().find(|op| *op == two);
            if let Some(op) = op {
                tokens.push(Token::Op(op));
                i += 2;
            } else {
                let op = ["<", ">", "+", "-", "*", "/", "(", ")", ","]
                    .into_iter()
                    .find(|op| op.as_bytes()[0] == bytes[i])
                    .ok_or_else(|| ExprError::Character(src[i..].chars().next().unwrap_or('?')))?;
                tokens.push(Token::Op(op));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// A compiled formula of a computed item, with the answered items it reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Formula {
    pub node: Node,
    pub inputs: Vec<u16>,
}

/// Compiles expressions against the items of a definition.
pub(crate) struct Compiler<'a> {
    pub items: &'a [ItemDef],
    pub index: &'a HashMap<String, u16>,
    /// The formulas of computed items compiled so far, by item index.
    pub formulas: &'a [Option<Formula>],
}

/// A compiled expression and what it reads.
pub(crate) struct Compiled {
    pub node: Node,
    /// The items it names (a computed item, not its inputs): they decide where it applies
    /// and are shown next to a violation. Sorted, unique.
    pub referenced: Vec<u16>,
    /// The answered items it reads, through computed items too: those a missing value
    /// makes it unknown. Sorted, unique.
    pub inputs: Vec<u16>,
}

struct Parser<'a, 'c> {
    tokens: Vec<Token>,
    pos: usize,
    compiler: &'c Compiler<'a>,
    referenced: Vec<u16>,
    inputs: Vec<u16>,
}

impl Compiler<'_> {
    /// Compiles one expression.
    pub fn compile(&self, src: &str) -> Result<Compiled, ExprError> {
        let mut parser = Parser {
            tokens: lex(src)?,
            pos: 0,
            compiler: self,
            referenced: Vec::new(),
            inputs: Vec::new(),
        };
        let node = parser.or()?;
        if let Some(t) = parser.tokens.get(parser.pos) {
            return Err(ExprError::Unexpected(format!("{t:?}")));
        }
        let (mut referenced, mut inputs) = (parser.referenced, parser.inputs);
        referenced.sort_unstable();
        referenced.dedup();
        inputs.sort_unstable();
        inputs.dedup();
        Ok(Compiled {
            node,
            referenced,
            inputs,
        })
    }
}

impl Parser<'_, '_> {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Op(o)) if *o == op)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Ident(w)) if w == word)
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ExprError> {
        if self.peek_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            match self.tokens.get(self.pos) {
                Some(t) => Err(ExprError::Unexpected(format!("{t:?}, expected `{op}`"))),
                None => Err(ExprError::End),
            }
        }
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, ExprError> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Node, ExprError> {
        // `item == 'code'` is a choice test, not arithmetic.
        if let (
            Some(Token::Ident(name)),
            Some(Token::Op(op @ ("==" | "!="))),
            Some(Token::Str(code)),
        ) = (
            self.tokens.get(self.pos),
            self.tokens.get(self.pos + 1),
            self.tokens.get(self.pos + 2),
        ) {
            let (name, negate, code) = (name.clone(), *op == "!=", code.clone());
            self.pos += 3;
            let item = self.item(&name)?;
            let def = &self.compiler.items[item as usize];
            if !matches!(def.kind, ItemType::Choice) {
                return Err(ExprError::WrongType {
                    item: name,
                    kind: def.kind.name(),
                    usage: "with == 'code'",
                });
            }
            return Ok(Node::ChoiceIs(item, choice_index(def, &code)?, negate));
        }
        let left = self.add()?;
        let op = match self.tokens.get(self.pos) {
            Some(Token::Op("<")) => Cmp::Lt,
            Some(Token::Op("<=")) => Cmp::Le,
            Some(Token::Op(">")) => Cmp::Gt,
            Some(Token::Op(">=")) => Cmp::Ge,
            Some(Token::Op("==")) => Cmp::Eq,
            Some(Token::Op("!=")) => Cmp::Ne,
            _ => return Ok(left),
        };
        self.pos += 1;
        Ok(Node::Cmp(op, Box::new(left), Box::new(self.add()?)))
    }

    fn add(&mut self) -> Result<Node, ExprError> {
        let mut left = self.mul()?;
        loop {
            let op = if self.peek_op("+") {
                Arith::Add
            } else if self.peek_op("-") {
                Arith::Sub
            } else {
                return Ok(left);
            };
            self.pos += 1;
            left = Node::Arith(op, Box::new(left), Box::new(self.mul()?));
        }
    }

    fn mul(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.peek_op("*") {
                Arith::Mul
            } else if self.peek_op("/") {
                Arith::Div
            } else {
                return Ok(left);
            };
            self.pos += 1;
            left = Node::Arith(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek_op("-") {
            self.pos += 1;
            return Ok(Node::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        let token = self.tokens.get(self.pos).cloned().ok_or(ExprError::End)?;
        self.pos += 1;
        match token {
            Token::Num(n) => Ok(Node::Num(n)),
            Token::Op("(") => {
                let inner = self.or()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Token::Ident(name) if self.peek_op("(") => {
                self.pos += 1;
                self.call(&name)
            }
            Token::Ident(name) if name == "year_end" => Ok(Node::YearEnd),
            Token::Ident(name) => {
                let item = self.numeric_item(&name)?;
                if !self.compiler.items[item as usize].computed {
                    return Ok(Node::Item(item));
                }
                let formula = self
                    .compiler
                    .formulas
                    .get(item as usize)
                    .and_then(Option::as_ref)
                    .ok_or(ExprError::ComputedLater(name))?;
                self.inputs.extend(formula.inputs.iter().copied());
                Ok(formula.node.clone())
            }
            other => Err(ExprError::Unexpected(format!("{other:?}"))),
        }
    }

    fn call(&mut self, name: &str) -> Result<Node, ExprError> {
        match name {
            "present" => {
                let item = self.item_argument()?;
                self.expect_op(")")?;
                if self.compiler.items[item as usize].computed {
                    return Err(ExprError::WrongType {
                        item: self.compiler.items[item as usize].id.clone(),
                        kind: "computed",
                        usage: "with present() (it is never entered)",
                    });
                }
                Ok(Node::Present(item))
            }
            "has" => {
                let item = self.item_argument()?;
                self.expect_op(",")?;
                let Some(Token::Str(code)) = self.tokens.get(self.pos).cloned() else {
                    return Err(ExprError::Arity(
                        "has(item, 'code') takes a quoted code".into(),
                    ));
                };
                self.pos += 1;
                self.expect_op(")")?;
                let def = &self.compiler.items[item as usize];
                if !matches!(def.kind, ItemType::MultipleChoice) {
                    return Err(ExprError::WrongType {
                        item: def.id.clone(),
                        kind: def.kind.name(),
                        usage: "with has()",
                    });
                }
                Ok(Node::Has(item, choice_index(def, &code)?))
            }
            "prev" => {
                let item = match self.tokens.get(self.pos).cloned() {
                    Some(Token::Ident(name)) => {
                        self.pos += 1;
                        self.numeric_item(&name)?
                    }
                    _ => return Err(ExprError::Arity("prev(item) takes an item".into())),
                };
                self.expect_op(")")?;
                if !self.compiler.items[item as usize].computed {
                    return Ok(Node::Prev(item));
                }
                let formula = self
                    .compiler
                    .formulas
                    .get(item as usize)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        ExprError::ComputedLater(self.compiler.items[item as usize].id.clone())
                    })?;
                Ok(Node::PrevFormula(Box::new(formula.node.clone())))
            }
            "if_offered" => {
                let capacity = self.or()?;
                self.expect_op(",")?;
                let value = self.or()?;
                self.expect_op(")")?;
                Ok(Node::IfOffered(Box::new(capacity), Box::new(value)))
            }
            "sum" | "min" | "max" | "abs" => {
                let mut args = vec![self.or()?];
                while self.peek_op(",") {
                    self.pos += 1;
                    args.push(self.or()?);
                }
                self.expect_op(")")?;
                match name {
                    "sum" => Ok(Node::Sum(args)),
                    "min" => Ok(Node::Min(args)),
                    "max" => Ok(Node::Max(args)),
                    _ if args.len() == 1 => {
                        Ok(Node::Abs(Box::new(args.pop().expect("one argument"))))
                    }
                    _ => Err(ExprError::Arity("abs() takes one argument".into())),
                }
            }
            other => Err(ExprError::Unexpected(format!("function `{other}`"))),
        }
    }

    fn item_argument(&mut self) -> Result<u16, ExprError> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Ident(name)) => {
                self.pos += 1;
                self.item(&name)
            }
            Some(t) => Err(ExprError::Unexpected(format!("{t:?}, expected an item"))),
            None => Err(ExprError::End),
        }
    }

    fn item(&mut self, name: &str) -> Result<u16, ExprError> {
        let index = *self
            .compiler
            .index
            .get(name)
            .ok_or_else(|| ExprError::UnknownItem(name.to_string()))?;
        self.referenced.push(index);
        if !self.compiler.items[index as usize].computed {
            self.inputs.push(index);
        }
        Ok(index)
    }

    fn numeric_item(&mut self, name: &str) -> Result<u16, ExprError> {
        let item = self.item(name)?;
        let def = &self.compiler.items[item as usize];
        if !def.kind.is_numeric() {
            return Err(ExprError::WrongType {
                item: name.to_string(),
                kind: def.kind.name(),
                usage: "as a number",
            });
        }
        Ok(item)
    }
}

fn choice_index(def: &ItemDef, code: &str) -> Result<u16, ExprError> {
    def.choices
        .iter()
        .position(|c| c.code == code)
        .map(|i| i as u16)
        .ok_or_else(|| ExprError::UnknownChoice {
            item: def.id.clone(),
            code: code.to_string(),
        })
}

/// What an expression reads while it is evaluated.
pub(crate) struct Scope<'a> {
    pub items: &'a [ItemDef],
    pub answers: &'a AnswerSet,
    /// Applicability bit of the respondent: items that do not apply to it read as 0.
    pub respondent_bit: u32,
    /// `missing = "zero"`: a missing or not-applicable number reads as 0.
    pub missing_as_zero: bool,
    pub year_end: f64,
    /// The previous campaign's answers, read through this campaign's items.
    pub previous: Option<&'a AnswerSet>,
}

impl Scope<'_> {
    /// The slot of an item, or `None` when the item does not apply to the respondent.
    fn slot(&self, item: u16) -> Option<&Slot> {
        (self.items[item as usize].mask & self.respondent_bit != 0)
            .then(|| self.answers.slot(item as usize))
    }

    fn number(&self, item: u16) -> Option<f64> {
        match self.slot(item) {
            // An item not asked of this category contributes nothing (a line of a sum).
            None => Some(0.0),
            Some(Slot::Value(v)) => v.as_number(),
            // The quantity does not exist for this structure (a date has no such zero).
            Some(Slot::NotApplicable)
                if !matches!(self.items[item as usize].kind, ItemType::Date) =>
            {
                Some(0.0)
            }
            Some(Slot::Missing) if self.missing_as_zero => Some(0.0),
            Some(_) => None,
        }
    }

    /// Evaluates a node; `None` means "unknown" (a missing input, a division by zero).
    pub fn eval(&self, node: &Node) -> Option<f64> {
        let truth = |b: bool| Some(if b { 1.0 } else { 0.0 });
        match node {
            Node::Num(n) => Some(*n),
            Node::Item(i) => self.number(*i),
            Node::YearEnd => Some(self.year_end),
            Node::Neg(a) => self.eval(a).map(|v| -v),
            Node::Arith(op, a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                match op {
                    Arith::Add => Some(a + b),
                    Arith::Sub => Some(a - b),
                    Arith::Mul => Some(a * b),
                    Arith::Div if b == 0.0 => None,
                    Arith::Div => Some(a / b),
                }
            }
            Node::Cmp(op, a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                // Tolerance for sums of decimals entered with two digits.
                let eq = (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
                truth(match op {
                    Cmp::Lt => a < b && !eq,
                    Cmp::Le => a < b || eq,
                    Cmp::Gt => a > b && !eq,
                    Cmp::Ge => a > b || eq,
                    Cmp::Eq => eq,
                    Cmp::Ne => !eq,
                })
            }
            Node::And(a, b) => match (self.eval(a), self.eval(b)) {
                (Some(x), _) | (_, Some(x)) if x == 0.0 => truth(false),
                (Some(_), Some(_)) => truth(true),
                _ => None,
            },
            Node::Or(a, b) => match (self.eval(a), self.eval(b)) {
                (Some(x), _) | (_, Some(x)) if x != 0.0 => truth(true),
                (Some(_), Some(_)) => truth(false),
                _ => None,
            },
            Node::Not(a) => self.eval(a).map(|v| if v == 0.0 { 1.0 } else { 0.0 }),
            Node::Sum(args) => args
                .iter()
                .try_fold(0.0, |acc, a| Some(acc + self.eval(a)?)),
            Node::Min(args) => args
                .iter()
                .try_fold(f64::INFINITY, |acc, a| Some(acc.min(self.eval(a)?))),
            Node::Max(args) => args
                .iter()
                .try_fold(f64::NEG_INFINITY, |acc, a| Some(acc.max(self.eval(a)?))),
            Node::Abs(a) => self.eval(a).map(f64::abs),
            Node::IfOffered(capacity, value) => match self.eval(capacity) {
                Some(c) if c > 0.0 => self.eval(value),
                _ => Some(0.0),
            },
            Node::Prev(i) => {
                // Not asked of this respondent: nothing to compare.
                self.slot(*i)?;
                match self.previous?.slot(*i as usize) {
                    Slot::Value(v) => v.as_number(),
                    _ => None,
                }
            }
            Node::PrevFormula(formula) => Scope {
                answers: self.previous?,
                previous: None,
                ..*self
            }
            .eval(formula),
            Node::Present(i) => truth(matches!(self.slot(*i), Some(Slot::Value(_)))),
            Node::ChoiceIs(i, code, negate) => match self.slot(*i) {
                Some(Slot::Value(Value::Choice(c))) => truth((c == code) != *negate),
                _ => None,
            },
            Node::Has(i, code) => match self.slot(*i) {
                Some(Slot::Value(Value::Choices(set))) => truth(set & (1u64 << code) != 0),
                _ => None,
            },
        }
    }
}
