//! The benchmark's results as Markdown: sections of tables, the targets
//! with the figure each was judged on, the machine line; and splicing that
//! text into BENCHMARKS.md between two markers, leaving the rest alone.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Opens the generated part of BENCHMARKS.md.
pub const BEGIN_MARKER: &str =
    "<!-- cairn-bench:begin (written by `bench/run`; edits inside are overwritten) -->";
/// Closes it.
pub const END_MARKER: &str = "<!-- cairn-bench:end -->";

/// One table with the text that says what it measures.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    /// Markdown shown before the table.
    pub about: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Markdown shown after the table (what the figures mean).
    pub notes: String,
}

impl Section {
    pub fn new(title: &str, about: &str, header: &[&str]) -> Section {
        Section {
            title: title.to_owned(),
            about: about.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: String::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn to_markdown(&self, out: &mut String) {
        let _ = writeln!(out, "### {}\n", self.title);
        if !self.about.is_empty() {
            let _ = writeln!(out, "{}\n", self.about.trim_end());
        }
        if !self.header.is_empty() {
            let _ = writeln!(out, "| {} |", self.header.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(self.header.len()));
            for row in &self.rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "{}\n", self.notes.trim_end());
        }
    }
}

/// A target of the issue and whether this run met it.
#[derive(Debug, Clone)]
pub struct Target {
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Everything one run produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Machine, date, versions, command.
    pub preamble: String,
    pub sections: Vec<Section>,
    pub targets: Vec<Target>,
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}\n", self.preamble.trim_end());
        if !self.targets.is_empty() {
            let _ = writeln!(out, "### Targets\n");
            let _ = writeln!(out, "| target | this run | met |");
            let _ = writeln!(out, "|---|---|---|");
            for target in &self.targets {
                let met = if target.met { "yes" } else { "**no**" };
                let _ = writeln!(out, "| {} | {} | {met} |", target.goal, target.measured);
            }
            out.push('\n');
        }
        for section in &self.sections {
            section.to_markdown(&mut out);
        }
        out
    }
}

/// Replaces the text between the markers of `document` with `generated`;
/// appends a marked block when the markers are missing.
pub fn splice(document: &str, generated: &str) -> anyhow::Result<String> {
    let block = format!("{BEGIN_MARKER}\n\n{}\n{END_MARKER}", generated.trim_end());
    match (document.find(BEGIN_MARKER), document.find(END_MARKER)) {
        (Some(begin), Some(end)) if begin < end => Ok(format!(
            "{}{block}{}",
            &document[..begin],
            &document[end + END_MARKER.len()..]
        )),
        (None, None) => Ok(format!("{}\n\n{block}\n", document.trim_end())),
        _ => anyhow::bail!(
            "the markers are broken (one is missing, or they are out of order): \
             expected `{BEGIN_MARKER}` then `{END_MARKER}`"
        ),
    }
}

/// Writes `generated` into the file at `path` (created when missing) through
/// a temporary file, so a failed run leaves the old file whole.
pub fn write_into(path: &Path, generated: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let new = splice(&old, generated).with_context(|| format!("in {}", path.display()))?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, new.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// A duration with three significant figures and a unit that fits.
pub fn show(duration: Duration) -> String {
    let ns = duration.as_nanos() as f64;
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {unit}")
}

/// `a / b` as a ratio, e.g. `1.8×`.
pub fn ratio(a: Duration, b: Duration) -> String {
    let b = b.as_secs_f64();
    if b == 0.0 {
        return "n/a".to_owned();
    }
    let r = a.as_secs_f64() / b;
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Bytes in MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splicing_replaces_only_the_marked_block() {
        let doc = format!(
            "# B\n\nintro\n\n{BEGIN_MARKER}\nold table\n{END_MARKER}\n\n## History\nkept\n"
        );
        let new = splice(&doc, "new table\n").expect("splices");
        assert!(new.starts_with("# B\n\nintro\n\n"));
        assert!(new.contains("new table"));
        assert!(!new.contains("old table"));
        assert!(new.ends_with(&format!("{END_MARKER}\n\n## History\nkept\n")));
        // Splicing again gives the same text: nothing piles up.
        assert_eq!(splice(&new, "new table\n").expect("splices"), new);
    }

    #[test]
    fn a_document_without_markers_gets_the_block_appended_and_broken_markers_are_refused() {
        let new = splice("# B\n\nprose\n", "table").expect("appends");
        assert!(new.starts_with("# B\n\nprose\n\n"));
        assert!(new.trim_end().ends_with(END_MARKER));
        assert!(splice(&format!("{END_MARKER}\n{BEGIN_MARKER}"), "x").is_err());
        assert!(splice(&format!("{BEGIN_MARKER}\nno end"), "x").is_err());
    }

    #[test]
    fn writing_keeps_the_text_around_the_block() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\nhand-written\n").expect("write");
        write_into(&path, "| a |\n").expect("first write");
        write_into(&path, "| b |\n").expect("second write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# Benchmarks\n\nhand-written\n"));
        assert!(text.contains("| b |") && !text.contains("| a |"));
    }

    #[test]
    fn durations_and_ratios_read_well() {
        assert_eq!(show(Duration::from_nanos(850)), "850 ns");
        assert_eq!(show(Duration::from_nanos(15_800)), "15.8 µs");
        assert_eq!(show(Duration::from_micros(44_400)), "44.4 ms");
        assert_eq!(show(Duration::from_millis(13_600)), "13.6 s");
        assert_eq!(
            ratio(Duration::from_millis(44), Duration::from_millis(25)),
            "1.76×"
        );
        assert_eq!(ratio(Duration::from_secs(1), Duration::ZERO), "n/a");
    }
}
