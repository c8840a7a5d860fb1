//! The rule language: Common Expression Language (CEL) via the `cel` crate
//! (cel-rust), with Vigil's variables and trend functions.
//!
//! See `docs/rules.md` for the reference and `docs/decisions/0003-rule-language.md`
//! for why CEL. A rule is compiled once, at pathway load, and checked there:
//!
//! - it must parse;
//! - every identifier must be a known variable (an observation code such as
//!   `spo2`, or `age`, `news2`, `patient`, `device`, `pef_pct`), so a typo is
//!   a load error, not a rule that silently never fires;
//! - trend functions (`change`, `mean`, `median`, `lowest`, `highest`,
//!   `count`) and `dur` take string literals: a known numeric code and a human
//!   duration, validated at load;
//! - a dry run against a complete synthetic state must give a boolean, which
//!   catches type errors and unknown functions.
//!
//! At run time a variable with no value (no fresh reading of that code, no
//! personal best) is absent: an expression that needs it is an error, and the
//! rule does not fire. CEL's `||` and `&&` absorb errors when the other side
//! decides (`spo2 < 92 || pulse > 130` fires on SpO2 alone).
//! Trend functions return `null` when there is too little data, which also
//! makes a comparison an error, so the rule does not fire.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::{Context, Env, Program, Value};
use chrono::Duration;
use vigil_clinical::Code;

use crate::duration;

/// A trend function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrendFn {
    /// Latest value minus the earliest value within the window.
    Change,
    /// Mean over the window.
    Mean,
    /// Median over the window.
    Median,
    /// Lowest value within the window.
    Lowest,
    /// Highest value within the window.
    Highest,
    /// Number of readings within the window.
    Count,
}

impl TrendFn {
    const ALL: [TrendFn; 6] = [
        TrendFn::Change,
        TrendFn::Mean,
        TrendFn::Median,
        TrendFn::Lowest,
        TrendFn::Highest,
        TrendFn::Count,
    ];

    fn name(self) -> &'static str {
        match self {
            TrendFn::Change => "change",
            TrendFn::Mean => "mean",
            TrendFn::Median => "median",
            TrendFn::Lowest => "lowest",
            TrendFn::Highest => "highest",
            TrendFn::Count => "count",
        }
    }

    fn parse(s: &str) -> Option<TrendFn> {
        TrendFn::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Applies the function to the values in the window, oldest first.
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        let n = values.len();
        match self {
            TrendFn::Count => Some(n as f64),
            _ if n == 0 => None,
            TrendFn::Change => (n >= 2).then(|| values[n - 1] - values[0]),
            TrendFn::Mean => Some(values.iter().sum::<f64>() / n as f64),
            TrendFn::Median => {
                // A selection, not a sort: linear in the window, which a
                // continuous device fills with a day of readings.
                let mut v = values.to_vec();
                let (lower, mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
                let mid = *mid;
                Some(if n % 2 == 1 {
                    mid
                } else {
                    let below = lower.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
                    (below + mid) / 2.0
                })
            }
            TrendFn::Lowest => values.iter().copied().reduce(f64::min),
            TrendFn::Highest => values.iter().copied().reduce(f64::max),
        }
    }
}

/// One trend call in a rule, with literal arguments checked at load.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrendCall {
    /// Which function.
    pub func: TrendFn,
    /// Over which code.
    pub code: Code,
    /// Over which window, ending at the evaluation time.
    pub window: Duration,
    /// The window as written (the lookup key).
    window_src: String,
}

impl TrendCall {
    fn key(&self) -> String {
        key(self.func.name(), self.code.as_str(), &self.window_src)
    }
}

fn key(func: &str, code: &str, window: &str) -> String {
    format!("{func}|{code}|{window}")
}

/// Top-level variables other than observation codes.
const VARIABLES: [&str; 5] = ["age", "news2", "patient", "device", "pef_pct"];

/// A compiled rule expression.
#[derive(Clone)]
pub(crate) struct Compiled {
    program: Arc<Program>,
    /// Trend calls, deduplicated.
    pub(crate) trends: Vec<TrendCall>,
    /// Observation codes the expression reads (directly, by trend, or `pef_pct`).
    pub(crate) codes: BTreeSet<Code>,
    /// The other variables it reads (of [`VARIABLES`]): facts no triggered
    /// rule reads are not built (`news2`, `patient` and `device` are maps,
    /// and building them was most of a reading's cost, docs/benchmarks.md).
    pub(crate) vars: BTreeSet<&'static str>,
    /// Whether it calls `dur()`.
    pub(crate) dur: bool,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("trends", &self.trends)
            .field("codes", &self.codes)
            .finish_non_exhaustive()
    }
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

/// The values an expression is evaluated against, built once per evaluation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    pub(crate) variables: Vec<(String, Value)>,
    /// Trend results by key; a missing key evaluates to `null`. The trend
    /// functions are in the context only when some rule calls one.
    pub(crate) trends: HashMap<String, Value>,
    /// Whether the context needs `dur()`.
    pub(crate) dur: bool,
}

impl Facts {
    pub(crate) fn set_trend(&mut self, call: &TrendCall, v: Option<f64>) {
        self.trends
            .insert(call.key(), v.map_or(Value::Null, Value::Float));
    }
}

struct Walk {
    trends: BTreeSet<TrendCall>,
    codes: BTreeSet<Code>,
    vars: BTreeSet<&'static str>,
    dur: bool,
    errors: Vec<String>,
}

fn string_literal(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
        _ => None,
    }
}

impl Walk {
    fn visit(&mut self, e: &IdedExpr, bound: &[String]) {
        match &e.expr {
            Expr::Ident(name) => {
                if bound.iter().any(|b| b == name) {
                    return;
                }
                if let Some(code) = Code::parse(name) {
                    self.codes.insert(code);
                } else if let Some(v) = VARIABLES.iter().find(|v| **v == name.as_str()) {
                    if *v == "pef_pct" {
                        self.codes.insert(Code::Pef);
                    }
                    self.vars.insert(v);
                } else {
                    self.errors.push(format!("unknown variable `{name}`"));
                }
            }
            Expr::Call(call) => {
                if let Some(f) = TrendFn::parse(&call.func_name) {
                    self.trend(f, &call.args);
                } else if call.func_name == "dur" {
                    self.dur = true;
                    match call.args.as_slice() {
                        [a] => match string_literal(a) {
                            Some(s) => {
                                if let Err(r) = duration::parse(&s) {
                                    self.errors.push(format!("dur(): {r}"));
                                }
                            }
                            None => self
                                .errors
                                .push("dur() takes a string literal such as \"1h\"".into()),
                        },
                        _ => self.errors.push("dur() takes one argument".into()),
                    }
                }
                if let Some(t) = &call.target {
                    self.visit(t, bound);
                }
                for a in &call.args {
                    self.visit(a, bound);
                }
            }
            Expr::Comprehension(c) => {
                self.visit(&c.iter_range, bound);
                let mut inner = bound.to_vec();
                inner.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    inner.push(v.clone());
                }
                inner.push(c.accu_var.clone());
                self.visit(&c.accu_init, &inner);
                self.visit(&c.loop_cond, &inner);
                self.visit(&c.loop_step, &inner);
                self.visit(&c.result, &inner);
            }
            Expr::List(l) => {
                for x in &l.elements {
                    self.visit(x, bound);
                }
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        self.visit(&me.key, bound);
                        self.visit(&me.value, bound);
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.visit(&f.value, bound);
                    }
                }
            }
            Expr::Select(s) => self.visit(&s.operand, bound),
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn trend(&mut self, f: TrendFn, args: &[IdedExpr]) {
        let name = f.name();
        let [code, window] = args else {
            self.errors.push(format!(
                "{name}() takes two arguments: a code and a window, e.g. {name}(\"spo2\", \"24h\")"
            ));
            return;
        };
        let (Some(code), Some(window_src)) = (string_literal(code), string_literal(window)) else {
            self.errors.push(format!(
                "{name}() takes string literals, e.g. {name}(\"spo2\", \"24h\")"
            ));
            return;
        };
        let Some(c) = Code::parse(&code).filter(|c| c.is_numeric()) else {
            self.errors.push(format!(
                "{name}(): {code:?} is not a numeric observation code"
            ));
            return;
        };
        match duration::parse(&window_src) {
            Ok(window) => {
                self.codes.insert(c);
                self.trends.insert(TrendCall {
                    func: f,
                    code: c,
                    window,
                    window_src,
                });
            }
            Err(r) => self.errors.push(format!("{name}(): {r}")),
        }
    }
}

impl Compiled {
    /// Compiles and checks `src` (see the module docs). The error is one line.
    pub(crate) fn compile(src: &str) -> Result<Compiled, String> {
        let program = env().compile(src).map_err(|e| {
            let text = e.to_string();
            // cel's message repeats the source with a caret; the first line says it.
            text.lines()
                .next()
                .unwrap_or("syntax error")
                .trim_start_matches("ERROR: ")
                .to_string()
        })?;
        let mut walk = Walk {
            trends: BTreeSet::new(),
            codes: BTreeSet::new(),
            vars: BTreeSet::new(),
            dur: false,
            errors: Vec::new(),
        };
        walk.visit(program.expression(), &[]);
        if let Some(e) = walk.errors.into_iter().next() {
            return Err(e);
        }
        let compiled = Compiled {
            program: Arc::new(program),
            trends: walk.trends.into_iter().collect(),
            codes: walk.codes,
            vars: walk.vars,
            dur: walk.dur,
        };
        let ctx = dry_run_facts(&compiled).context()?;
        compiled.eval_in(&ctx)?;
        Ok(compiled)
    }

    /// Evaluates in a context built by [`Facts::context`] (one per
    /// observation, shared by every rule it triggers): `Ok(true)` fires; an
    /// evaluation error (an absent value, a null trend) is `Err` and does
    /// not fire.
    pub(crate) fn eval_in(&self, ctx: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the expression gives {:?}, not true or false",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Facts {
    /// The CEL context: the variables, and the trend functions answering
    /// from the precomputed table.
    pub(crate) fn context(&self) -> Result<Context<'static, 'static>, String> {
        let mut ctx = Context::with_env(env());
        for (name, value) in &self.variables {
            ctx.add_variable_from_value(name.clone(), value.clone());
        }
        let table = Arc::new(self.trends.clone());
        for f in TrendFn::ALL.into_iter().filter(|_| !table.is_empty()) {
            let table = table.clone();
            let name = f.name();
            ctx.add_function(
                name,
                move |code: Arc<String>, window: Arc<String>| -> Value {
                    table
                        .get(&key(name, &code, &window))
                        .cloned()
                        .unwrap_or(Value::Null)
                },
            )
            .map_err(|e| e.to_string())?;
        }
        if self.dur {
            ctx.add_function("dur", |s: Arc<String>| -> Value {
                duration::parse(&s).map_or(Value::Null, |d| {
                    Value::Float(d.num_milliseconds() as f64 / 1000.0)
                })
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(ctx)
    }
}

/// A complete, plausible state: every variable present, every trend 1.0.
fn dry_run_facts(c: &Compiled) -> Facts {
    let mut f = Facts {
        dur: true,
        ..Facts::default()
    };
    let mut ages = HashMap::new();
    for code in Code::ALL {
        let v = match code.allowed_text() {
            Some(t) => Value::from(t[0]),
            None => {
                let (lo, hi) = code.valid_range().unwrap_or((0.0, 1.0));
                Value::Float((lo + hi) / 2.0)
            }
        };
        f.variables.push((code.as_str().to_string(), v));
        ages.insert(code.as_str().to_string(), Value::Float(60.0));
    }
    f.variables.push(("age".into(), Value::from(ages)));
    f.variables.push(("pef_pct".into(), Value::Float(80.0)));
    f.variables
        .push(("news2".into(), crate::state::news2_value_sample()));
    f.variables
        .push(("patient".into(), crate::state::patient_value_sample()));
    f.variables
        .push(("device".into(), crate::state::device_value_sample()));
    for t in &c.trends {
        f.set_trend(t, Some(1.0));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_rule_compiles_and_records_its_codes_and_trends() {
        let c =
            Compiled::compile(r#"spo2 < patient.spo2_lo && change("spo2", "24h") <= -3"#).unwrap();
        assert_eq!(c.codes, BTreeSet::from([Code::Spo2]));
        assert_eq!(c.trends.len(), 1);
        assert_eq!(c.trends[0].window, Duration::hours(24));
    }

    #[test]
    fn compile_errors_say_why() {
        for (src, want) in [
            ("spo2 < ", "Syntax error"),
            ("spo3 < 92", "unknown variable `spo3`"),
            (r#"change("spo2")"#, "two arguments"),
            (
                r#"change("spo9", "1h") > 1"#,
                "not a numeric observation code",
            ),
            (r#"mean("spo2", "soon") > 1"#, "bad duration"),
            (r#"mean(acvpu, "1h") > 1"#, "string literals"),
            ("spo2", "not true or false"),
            ("spo2 + 1 > 2", "Unsupported binary operator"),
            ("frobnicate(spo2)", "frobnicate"),
            (r#"acvpu > 3"#, ""),
        ] {
            let e = Compiled::compile(src).expect_err(src);
            assert!(e.contains(want), "{src}: {e}");
        }
    }

    #[test]
    fn comprehension_variables_are_not_unknown() {
        Compiled::compile("[90, 91].exists(x, spo2 < x)").unwrap();
    }

    #[test]
    fn trend_functions_apply() {
        let v = [97.0, 95.0, 92.0, 94.0];
        assert_eq!(TrendFn::Change.apply(&v), Some(-3.0));
        assert_eq!(TrendFn::Mean.apply(&v), Some(94.5));
        assert_eq!(TrendFn::Median.apply(&v), Some(94.5));
        assert_eq!(TrendFn::Median.apply(&v[..3]), Some(95.0));
        assert_eq!(TrendFn::Lowest.apply(&v), Some(92.0));
        assert_eq!(TrendFn::Highest.apply(&v), Some(97.0));
        assert_eq!(TrendFn::Count.apply(&[]), Some(0.0));
        assert_eq!(TrendFn::Change.apply(&[90.0]), None);
        assert_eq!(TrendFn::Mean.apply(&[]), None);
    }

    proptest::proptest! {
        /// The median by selection is the median of the sorted values.
        #[test]
        fn the_median_by_selection_is_the_sorted_median(
            v in proptest::collection::vec(-1e3f64..1e3, 1..200)
        ) {
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            let want = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
            };
            proptest::prop_assert_eq!(TrendFn::Median.apply(&v), Some(want));
        }
    }
}
