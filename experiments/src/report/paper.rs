//! The paper's numbers: `experiments/paper_values.csv`, one row per value,
//! with the place in the paper it comes from.

use anyhow::{Context, Result};
use std::path::Path;

/// The copy of `experiments/paper_values.csv` compiled into the binary, used
/// when the default path does not exist (e.g. when run from another directory).
pub const EMBEDDED: &str = include_str!("../../paper_values.csv");

/// One row of `paper_values.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperValue {
    /// Which table: `settings`, `table1`, `table2`, `table3`, or `headline`
    /// (the report's summary table: one row per headline result).
    pub table: String,
    /// Key matched against our names (e.g. a `failover` step name).
    pub key: String,
    /// The paper's wording.
    pub label: String,
    /// The value as printed (may be a range such as `28-76`).
    pub value: String,
    /// Unit, possibly empty.
    pub unit: String,
    /// Where in the paper.
    pub citation: String,
    /// For `headline` rows: how far ours may be from `value` and still
    /// reproduce it ([`super::headline::Tolerance`]); empty elsewhere (the
    /// column may be left off those rows).
    pub tolerance: String,
}

/// Parses `paper_values.csv` text; `origin` names it in errors. Columns are
/// found by their header; `tolerance` may be left off rows that have none.
pub fn parse(text: &str, origin: &str) -> Result<Vec<PaperValue>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .with_context(|| format!("{origin}: header"))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{origin}: row {}", i + 2))?;
        let get = |name: &str, required: bool| -> Result<String> {
            match col(name).and_then(|c| row.get(c)) {
                Some(v) => Ok(v.to_string()),
                None if !required => Ok(String::new()),
                None => anyhow::bail!("{origin}: row {}: no `{name}` field", i + 2),
            }
        };
        out.push(PaperValue {
            table: get("table", true)?,
            key: get("key", true)?,
            label: get("label", true)?,
            value: get("value", true)?,
            unit: get("unit", true)?,
            citation: get("citation", true)?,
            tolerance: get("tolerance", false)?,
        });
    }
    Ok(out)
}

/// Reads `path`, or the embedded copy if `path` is absent and `fallback` is
/// true. Returns the values and a description of where they came from.
pub fn load(path: &Path, fallback: bool) -> Result<(Vec<PaperValue>, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((
            parse(&text, &path.display().to_string())?,
            path.display().to_string(),
        )),
        Err(_) if fallback => Ok((
            parse(EMBEDDED, "embedded paper_values.csv")?,
            "experiments/paper_values.csv (copy compiled into coral-exp)".to_string(),
        )),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The rows of one table, in file order.
pub fn table<'a>(values: &'a [PaperValue], name: &str) -> Vec<&'a PaperValue> {
    values.iter().filter(|v| v.table == name).collect()
}

/// `value unit` as one string.
pub fn with_unit(v: &PaperValue) -> String {
    if v.unit.is_empty() {
        v.value.clone()
    } else if v.unit == "%" {
        format!("{} %", v.value)
    } else {
        format!("{} {}", v.value, v.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_copy_parses_with_the_papers_totals() {
        let v = parse(EMBEDDED, "embedded").unwrap();
        let total = |t: &str| {
            table(&v, t)
                .iter()
                .find(|r| r.key == "total")
                .map(|r| r.value.clone())
        };
        assert_eq!(total("table1").as_deref(), Some("1.5"));
        assert_eq!(total("table2").as_deref(), Some("11.0"));
        assert!(table(&v, "table3")
            .iter()
            .any(|r| r.key == "coral" && r.value == "30"));
        assert!(v.iter().all(|r| !r.citation.is_empty()));
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        let err = parse("table,key\nx\n", "t").unwrap_err();
        assert!(format!("{err:#}").contains("t: row"));
    }
}
