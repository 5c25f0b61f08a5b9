//! Seating charts (the original's format) and how their load spreads over
//! partitions.
//!
//! ```json
//! {"rows": 25, "cols": 20, "sections": [{"name": "A", "price": 3000, "subsections": 10}]}
//! ```
//! Every subsection of every section is `rows × cols` seats; subsections are
//! numbered from 1.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use turnstile_protocol::{ConfigureSubsection, SeatCommand};

use crate::partition::section_partition;

/// A venue's layout for one event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatingChart {
    /// Rows per subsection.
    pub rows: u32,
    /// Seats per row.
    pub cols: u32,
    pub sections: Vec<Section>,
}

/// One priced section made of numbered subsections.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub name: String,
    /// Price of one seat, whole currency units.
    pub price: u64,
    /// How many subsections (numbered 1..=subsections).
    pub subsections: u32,
}

/// A chart that cannot be used, with the JSON path of the problem.
#[derive(Debug, thiserror::Error)]
pub enum SeatingError {
    #[error("cannot read seating chart {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("seating chart {origin}: {path}: {reason}")]
    Invalid { origin: String, path: String, reason: String },
}

impl SeatingChart {
    /// The default chart of the main job: sections A–J, 10 subsections each,
    /// 25 × 20 seats per subsection.
    pub fn default_venue() -> Self {
        SeatingChart {
            rows: 25,
            cols: 20,
            sections: ('A'..='J')
                .enumerate()
                .map(|(i, name)| Section { name: name.to_string(), price: 1000 + 500 * i as u64, subsections: 10 })
                .collect(),
        }
    }

    /// Reads and validates a chart file.
    pub fn from_path(path: &Path) -> Result<Self, SeatingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SeatingError::Read { path: path.to_owned(), source })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates chart text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, SeatingError> {
        let invalid = |path: String, reason: String| SeatingError::Invalid { origin: origin.to_owned(), path, reason };
        let de = &mut serde_json::Deserializer::from_str(text);
        let chart: SeatingChart = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            invalid(if path == "." { "$".into() } else { format!("$.{path}") }, e.into_inner().to_string())
        })?;
        if chart.rows == 0 {
            return Err(invalid("$.rows".into(), "must be at least 1".into()));
        }
        if chart.cols == 0 {
            return Err(invalid("$.cols".into(), "must be at least 1".into()));
        }
        if chart.sections.is_empty() {
            return Err(invalid("$.sections".into(), "must name at least one section".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, section) in chart.sections.iter().enumerate() {
            let at = |field: &str| format!("$.sections[{i}].{field}");
            if section.name.trim().is_empty() || section.name.chars().any(char::is_control) {
                return Err(invalid(at("name"), format!("{:?} is not a usable section name", section.name)));
            }
            if !seen.insert(section.name.as_str()) {
                return Err(invalid(at("name"), format!("section {:?} appears twice", section.name)));
            }
            if section.subsections == 0 {
                return Err(invalid(at("subsections"), "must be at least 1".into()));
            }
        }
        Ok(chart)
    }

    /// Seats in one subsection.
    pub fn seats_per_subsection(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.cols)
    }

    /// Seats in the whole venue.
    pub fn total_seats(&self) -> u64 {
        let subsections: u64 = self.sections.iter().map(|s| u64::from(s.subsections)).sum();
        subsections * self.seats_per_subsection()
    }

    /// One `configure_subsection` per subsection, with its section name.
    pub fn configure_commands(&self) -> impl Iterator<Item = (String, SeatCommand)> + '_ {
        self.sections.iter().flat_map(move |section| {
            (1..=section.subsections).map(move |subsection| {
                (
                    section.name.clone(),
                    SeatCommand::ConfigureSubsection(ConfigureSubsection {
                        section: section.name.clone(),
                        subsection,
                        rows: self.rows,
                        seats_per_row: self.cols,
                        price: section.price,
                    }),
                )
            })
        })
    }
}

/// Load of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionLoad {
    pub sections: Vec<String>,
    pub subsections: u64,
    pub seats: u64,
}

/// How a chart's seat traffic spreads over the partitions of
/// `ticket-command-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub event_id: u64,
    pub loads: Vec<PartitionLoad>,
}

/// A partition counts as overloaded above this multiple of the mean.
const OVERLOAD_FACTOR: f64 = 1.5;

impl Distribution {
    pub fn analyse(event_id: u64, chart: &SeatingChart, partitions: i32) -> Self {
        let mut loads = vec![PartitionLoad::default(); partitions.max(1) as usize];
        for section in &chart.sections {
            let p = section_partition(event_id, &section.name, partitions) as usize;
            let load = &mut loads[p];
            load.sections.push(section.name.clone());
            load.subsections += u64::from(section.subsections);
            load.seats += u64::from(section.subsections) * chart.seats_per_subsection();
        }
        Distribution { event_id, loads }
    }

    /// Partitions that carry no section.
    pub fn unused(&self) -> Vec<usize> {
        (0..self.loads.len()).filter(|&p| self.loads[p].seats == 0).collect()
    }

    /// Partitions with more than 1.5× the mean seat count.
    pub fn overloaded(&self) -> Vec<usize> {
        let total: u64 = self.loads.iter().map(|l| l.seats).sum();
        let mean = total as f64 / self.loads.len() as f64;
        (0..self.loads.len()).filter(|&p| self.loads[p].seats as f64 > mean * OVERLOAD_FACTOR).collect()
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>9}  {:>11}  {:>8}  sections", "partition", "subsections", "seats")?;
        for (p, load) in self.loads.iter().enumerate() {
            writeln!(f, "{p:>9}  {:>11}  {:>8}  {}", load.subsections, load.seats, load.sections.join(","))?;
        }
        let unused = self.unused();
        if !unused.is_empty() {
            writeln!(f, "warning: partitions without sections (idle consumers): {unused:?}")?;
        }
        for p in self.overloaded() {
            writeln!(
                f,
                "warning: partition {p} carries {} seats, more than {OVERLOAD_FACTOR}x the mean",
                self.loads[p].seats
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_format() {
        let chart = SeatingChart::from_json(
            r#"{"rows": 2, "cols": 3, "sections": [{"name": "A", "price": 3000, "subsections": 2}]}"#,
            "t",
        )
        .unwrap();
        assert_eq!(chart.total_seats(), 12);
        let commands: Vec<_> = chart.configure_commands().collect();
        assert_eq!(commands.len(), 2);
        let SeatCommand::ConfigureSubsection(c) = &commands[1].1 else { panic!() };
        assert_eq!((c.subsection, c.rows, c.seats_per_row, c.price), (2, 2, 3, 3000));
    }

    #[test]
    fn malformed_charts_name_the_json_path() {
        let err = |text: &str| SeatingChart::from_json(text, "chart.json").unwrap_err().to_string();
        let e = err(r#"{"rows": 2, "cols": 3, "sections": [{"name": "A", "price": "x", "subsections": 2}]}"#);
        assert!(e.contains("$.sections[0].price"), "{e}");
        let e = err(r#"{"rows": 0, "cols": 3, "sections": [{"name": "A", "price": 1, "subsections": 2}]}"#);
        assert!(e.contains("$.rows"), "{e}");
        let e = err(r#"{"rows": 1, "cols": 3, "sections": [{"name": "A", "price": 1, "subsections": 0}]}"#);
        assert!(e.contains("$.sections[0].subsections"), "{e}");
        let e = err(
            r#"{"rows": 1, "cols": 3, "sections": [{"name": "A", "price": 1, "subsections": 1}, {"name": "A", "price": 1, "subsections": 1}]}"#,
        );
        assert!(e.contains("$.sections[1].name"), "{e}");
        let e = err(r#"{"rows": 1, "cols": 3}"#);
        assert!(e.contains("sections"), "{e}");
        let e = err("not json");
        assert!(e.contains("chart.json"), "{e}");
    }

    #[test]
    fn default_venue_spreads_evenly() {
        let d = Distribution::analyse(1, &SeatingChart::default_venue(), 10);
        assert!(d.unused().is_empty());
        assert!(d.overloaded().is_empty());
        assert_eq!(d.loads[0].sections, vec!["A"]);
    }

    #[test]
    fn warns_about_idle_and_hot_partitions() {
        let chart = SeatingChart::from_json(
            r#"{"rows": 1, "cols": 1, "sections": [{"name": "A", "price": 1, "subsections": 10}, {"name": "E", "price": 1, "subsections": 1}]}"#,
            "t",
        )
        .unwrap();
        let d = Distribution::analyse(1, &chart, 4);
        assert_eq!(d.loads[0].sections, vec!["A", "E"], "E wraps to partition 0 of 4");
        assert_eq!(d.unused(), vec![1, 2, 3]);
        assert_eq!(d.overloaded(), vec![0]);
        assert!(d.to_string().contains("warning"));
    }
}
