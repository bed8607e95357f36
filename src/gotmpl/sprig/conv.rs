//! Sprig's conversions, math, defaults and reflection helpers.

use super::strings::rand_below;
use super::{empty, f, fh, fv, n, s, strval, to_float64, to_int64};
use crate::gotmpl::funcs::FuncMap;
use crate::gotmpl::gofmt;
use crate::gotmpl::value::{ListType, Ty, Value};

fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut v = Vec::new();
    if stop < start {
        if step >= 0 {
            return v;
        }
        let mut i = start;
        while i > stop && v.len() < 1 << 24 {
            v.push(i);
            i += step;
        }
        return v;
    }
    if step <= 0 {
        return v;
    }
    let mut i = start;
    while i < stop && v.len() < 1 << 24 {
        v.push(i);
        i = match i.checked_add(step) {
            Some(x) => x,
            None => break,
        };
    }
    v
}

fn int_list(v: Vec<i64>) -> Value {
    Value::typed_list(ListType::Int, v.into_iter().map(Value::Int).collect())
}

fn seq(p: &[i64]) -> String {
    let v = match p.len() {
        1 => {
            let (start, end) = (1, p[0]);
            let inc = if end < start { -1 } else { 1 };
            until_step(start, end + inc, inc)
        }
        2 => {
            let (start, end) = (p[0], p[1]);
            let step = if end < start { -1 } else { 1 };
            until_step(start, end + step, step)
        }
        3 => {
            let (start, step, end) = (p[0], p[1], p[2]);
            let mut inc = 1;
            if end < start {
                inc = -1;
                if step > 0 {
                    return String::new();
                }
            }
            until_step(start, end + inc, step)
        }
        _ => return String::new(),
    };
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

/// An exact decimal: `mantissa × 10^exp` (shopspring/decimal's model).
#[derive(Clone, Copy, Debug)]
struct Decimal {
    m: i128,
    e: i32,
}

impl Decimal {
    /// `decimal.NewFromFloat`: the shortest decimal that round-trips.
    fn from_f64(x: f64) -> Option<Decimal> {
        if !x.is_finite() {
            return None;
        }
        let s = format!("{:e}", x);
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let neg = mant.starts_with('-');
        let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
        let frac = mant.split_once('.').map(|(_, f)| f.len()).unwrap_or(0) as i32;
        let m: i128 = digits.parse().ok()?;
        Some(Decimal {
            m: if neg { -m } else { m },
            e: exp - frac,
        })
    }

    fn align(a: Decimal, b: Decimal) -> Option<(i128, i128, i32)> {
        let e = a.e.min(b.e);
        let sa = 10i128.checked_pow((a.e - e) as u32)?;
        let sb = 10i128.checked_pow((b.e - e) as u32)?;
        Some((a.m.checked_mul(sa)?, b.m.checked_mul(sb)?, e))
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(0.0)
    }
}

fn decimal_op(a: f64, b: f64, op: char) -> f64 {
    let fallback = || match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        _ => a / b,
    };
    let (Some(x), Some(y)) = (Decimal::from_f64(a), Decimal::from_f64(b)) else {
        return fallback();
    };
    let r = match op {
        '+' | '-' => Decimal::align(x, y).and_then(|(p, q, e)| {
            let m = if op == '+' {
                p.checked_add(q)?
            } else {
                p.checked_sub(q)?
            };
            Some(Decimal { m, e })
        }),
        '*' => x.m.checked_mul(y.m).map(|m| Decimal { m, e: x.e + y.e }),
        _ => {
            if y.m == 0 {
                return fallback();
            }
            // DivRound to 16 fractional digits, half away from zero.
            let (p, q, _) = match Decimal::align(x, y) {
                Some(v) => v,
                None => return fallback(),
            };
            (|| {
                let scale = 10i128.checked_pow(17)?;
                let num = p.checked_mul(scale)?;
                let mut quo = num / q;
                let sign = if (num < 0) != (q < 0) { -1 } else { 1 };
                let last = (quo % 10).abs();
                quo /= 10;
                if last >= 5 {
                    quo += sign;
                }
                Some(Decimal { m: quo, e: -16 })
            })()
        }
    };
    match r {
        Some(d) => d.to_f64(),
        None => fallback(),
    }
}

fn decimal_fold(first: f64, rest: &[Value], op: char) -> f64 {
    rest.iter()
        .fold(first, |acc, x| decimal_op(acc, to_float64(x), op))
}

fn round(a: f64, places: f64, on: f64) -> f64 {
    let pow = 10f64.powf(places);
    let digit = pow * a;
    let div = digit.fract();
    let r = if div >= on {
        digit.ceil()
    } else {
        digit.floor()
    };
    r / pow
}

fn to_decimal(v: &Value) -> i64 {
    i64::from_str_radix(&gofmt::sprint(std::slice::from_ref(v)), 8).unwrap_or(0)
}

/// Go's `strconv.Atoi`.
fn atoi(s: &str) -> i64 {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.starts_with(['+', '-']) && t != s {
        return 0;
    }
    s.parse::<i64>().unwrap_or(0)
}

/// Sprig's `typeIsLike`: the type name, or a pointer to it.
fn type_is_like(target: &str, v: &Value) -> bool {
    let t = v.type_name();
    t == target || format!("*{t}") == target
}

pub(super) fn register(m: &mut FuncMap) {
    use Ty::*;
    m.insert("atoi", f(&[String], |a| Ok(Value::Int(atoi(s(&a, 0))))));
    m.insert("int64", f(&[Any], |a| Ok(Value::Int64(to_int64(&a[0])))));
    m.insert("int", f(&[Any], |a| Ok(Value::Int(to_int64(&a[0])))));
    m.insert(
        "float64",
        f(&[Any], |a| Ok(Value::Float(to_float64(&a[0])))),
    );
    m.insert(
        "seq",
        fv(&[], Int, |a| {
            let p: Vec<i64> = a.iter().map(|x| n(std::slice::from_ref(x), 0)).collect();
            Ok(Value::str(seq(&p)))
        }),
    );
    m.insert(
        "toDecimal",
        f(&[Any], |a| Ok(Value::Int64(to_decimal(&a[0])))),
    );
    m.insert(
        "until",
        f(&[Int], |a| {
            let c = n(&a, 0);
            Ok(int_list(until_step(0, c, if c < 0 { -1 } else { 1 })))
        }),
    );
    m.insert(
        "untilStep",
        f(&[Int, Int, Int], |a| {
            Ok(int_list(until_step(n(&a, 0), n(&a, 1), n(&a, 2))))
        }),
    );
    m.insert(
        "add1",
        f(&[Any], |a| {
            Ok(Value::Int64(to_int64(&a[0]).wrapping_add(1)))
        }),
    );
    m.insert(
        "add",
        fv(&[], Any, |a| {
            Ok(Value::Int64(
                a.iter().fold(0i64, |acc, x| acc.wrapping_add(to_int64(x))),
            ))
        }),
    );
    m.insert(
        "sub",
        f(&[Any, Any], |a| {
            Ok(Value::Int64(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
        }),
    );
    m.insert(
        "div",
        f(&[Any, Any], |a| {
            let d = to_int64(&a[1]);
            if d == 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Ok(Value::Int64(to_int64(&a[0]).wrapping_div(d)))
        }),
    );
    m.insert(
        "mod",
        f(&[Any, Any], |a| {
            let d = to_int64(&a[1]);
            if d == 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Ok(Value::Int64(to_int64(&a[0]).wrapping_rem(d)))
        }),
    );
    m.insert(
        "mul",
        fv(&[Any], Any, |a| {
            Ok(Value::Int64(
                a[1..]
                    .iter()
                    .fold(to_int64(&a[0]), |acc, x| acc.wrapping_mul(to_int64(x))),
            ))
        }),
    );
    m.insert(
        "randInt",
        fh(&[Int, Int], |e, a| {
            let (lo, hi) = (n(&a, 0), n(&a, 1));
            if hi <= lo {
                return Err("invalid argument to Intn".into());
            }
            Ok(Value::Int(lo + rand_below(e, (hi - lo) as u64) as i64))
        }),
    );
    m.insert(
        "add1f",
        f(&[Any], |a| {
            Ok(Value::Float(decimal_op(to_float64(&a[0]), 1.0, '+')))
        }),
    );
    m.insert(
        "addf",
        fv(&[], Any, |a| Ok(Value::Float(decimal_fold(0.0, &a, '+')))),
    );
    m.insert(
        "subf",
        fv(&[Any], Any, |a| {
            Ok(Value::Float(decimal_fold(to_float64(&a[0]), &a[1..], '-')))
        }),
    );
    m.insert(
        "divf",
        fv(&[Any], Any, |a| {
            Ok(Value::Float(decimal_fold(to_float64(&a[0]), &a[1..], '/')))
        }),
    );
    m.insert(
        "mulf",
        fv(&[Any], Any, |a| {
            Ok(Value::Float(decimal_fold(to_float64(&a[0]), &a[1..], '*')))
        }),
    );
    for name in ["biggest", "max"] {
        m.insert(
            name,
            fv(&[Any], Any, |a| {
                Ok(Value::Int64(
                    a[1..].iter().map(to_int64).fold(to_int64(&a[0]), i64::max),
                ))
            }),
        );
    }
    m.insert(
        "min",
        fv(&[Any], Any, |a| {
            Ok(Value::Int64(
                a[1..].iter().map(to_int64).fold(to_int64(&a[0]), i64::min),
            ))
        }),
    );
    m.insert(
        "maxf",
        fv(&[Any], Any, |a| {
            Ok(Value::Float(
                a[1..]
                    .iter()
                    .map(to_float64)
                    .fold(to_float64(&a[0]), go_max),
            ))
        }),
    );
    m.insert(
        "minf",
        fv(&[Any], Any, |a| {
            Ok(Value::Float(
                a[1..]
                    .iter()
                    .map(to_float64)
                    .fold(to_float64(&a[0]), go_min),
            ))
        }),
    );
    m.insert(
        "ceil",
        f(&[Any], |a| Ok(Value::Float(to_float64(&a[0]).ceil()))),
    );
    m.insert(
        "floor",
        f(&[Any], |a| Ok(Value::Float(to_float64(&a[0]).floor()))),
    );
    m.insert(
        "round",
        fv(&[Any, Int], Float, |a| {
            let on = match a.get(2) {
                Some(Value::Float(x)) => *x,
                _ => 0.5,
            };
            Ok(Value::Float(round(to_float64(&a[0]), n(&a, 1) as f64, on)))
        }),
    );
    // defaults
    m.insert(
        "default",
        fv(&[Any], Any, |a| {
            if a.len() < 2 || empty(&a[1]) {
                return Ok(a[0].clone());
            }
            Ok(a[1].clone())
        }),
    );
    m.insert("empty", f(&[Any], |a| Ok(Value::Bool(empty(&a[0])))));
    m.insert(
        "coalesce",
        fv(&[], Any, |a| {
            Ok(a.into_iter().find(|x| !empty(x)).unwrap_or(Value::Nil))
        }),
    );
    m.insert(
        "all",
        fv(&[], Any, |a| Ok(Value::Bool(a.iter().all(|x| !empty(x))))),
    );
    m.insert(
        "any",
        fv(&[], Any, |a| Ok(Value::Bool(a.iter().any(|x| !empty(x))))),
    );
    m.insert(
        "ternary",
        f(&[Any, Any, Bool], |a| {
            Ok(if a[2].truth() {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }),
    );
    // reflection
    m.insert("typeOf", f(&[Any], |a| Ok(Value::str(a[0].type_name()))));
    m.insert(
        "typeIs",
        f(&[String, Any], |a| {
            Ok(Value::Bool(s(&a, 0) == a[1].type_name()))
        }),
    );
    m.insert(
        "typeIsLike",
        f(&[String, Any], |a| {
            Ok(Value::Bool(type_is_like(s(&a, 0), &a[1])))
        }),
    );
    m.insert(
        "kindOf",
        f(&[Any], |a| {
            if a[0].is_nil() {
                return Err(
                    "runtime error: invalid memory address or nil pointer dereference".into(),
                );
            }
            Ok(Value::str(a[0].kind_name()))
        }),
    );
    m.insert(
        "kindIs",
        f(&[String, Any], |a| {
            if a[1].is_nil() {
                return Err(
                    "runtime error: invalid memory address or nil pointer dereference".into(),
                );
            }
            Ok(Value::Bool(s(&a, 0) == a[1].kind_name()))
        }),
    );
    m.insert(
        "deepEqual",
        f(&[Any, Any], |a| {
            Ok(Value::Bool(super::deep_equal(&a[0], &a[1])))
        }),
    );
    m.insert(
        "uuidv4",
        fh(&[], |e, _| {
            let mut b = [0u8; 16];
            e.host.fill_random(&mut b);
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h: std::string::String = b.iter().map(|x| format!("{x:02x}")).collect();
            Ok(Value::str(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )))
        }),
    );
    m.insert(
        "randBytes",
        fh(&[Int], |e, a| {
            use base64::Engine as _;
            let count = n(&a, 0).clamp(0, 1 << 20) as usize;
            let mut b = vec![0u8; count];
            e.host.fill_random(&mut b);
            Ok(Value::str(
                base64::engine::general_purpose::STANDARD.encode(b),
            ))
        }),
    );
    let _ = strval;
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}
