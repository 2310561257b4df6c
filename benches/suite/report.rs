//! Collects the numbers as the benchmarks run and prints them, with the targets, as Markdown
//! tables at the end.

pub struct Report {
    rows: Vec<[String; 3]>,
    targets: Vec<Target>,
}

struct Target {
    name: String,
    goal: String,
    measured: String,
    pass: bool,
    gap: String,
}

impl Report {
    pub fn new() -> Report {
        Report {
            rows: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// One measured number, printed at once and kept for the summary.
    pub fn row(&mut self, bench: &str, metric: &str, value: String) {
        println!("  {metric:<44} {value}");
        self.rows
            .push([bench.to_owned(), metric.to_owned(), value.to_owned()]);
    }

    /// A target met when `value < limit`.
    pub fn below(&mut self, name: &str, value: f64, limit: f64, unit: &str) {
        let pass = value < limit;
        let gap = if pass {
            format!("{:.3} {unit} to spare", limit - value)
        } else {
            format!(
                "{:.3} {unit} over ({:.1}x the limit)",
                value - limit,
                value / limit
            )
        };
        self.target(
            name,
            format!("< {limit} {unit}"),
            format!("{value:.3} {unit}"),
            pass,
            gap,
        );
    }

    /// A target met when `value >= floor`.
    pub fn at_least(&mut self, name: &str, value: f64, floor: f64, unit: &str) {
        let pass = value >= floor;
        let gap = if pass {
            format!("{:.1} {unit} above", value - floor)
        } else {
            format!(
                "{:.1} {unit} short ({:.0}% of the target)",
                floor - value,
                100.0 * value / floor
            )
        };
        self.target(
            name,
            format!(">= {floor} {unit}"),
            format!("{value:.1} {unit}"),
            pass,
            gap,
        );
    }

    fn target(&mut self, name: &str, goal: String, measured: String, pass: bool, gap: String) {
        println!(
            "  {} {name}: {measured} (target {goal}; {gap})",
            if pass { "PASS" } else { "MISS" }
        );
        self.targets.push(Target {
            name: name.to_owned(),
            goal,
            measured,
            pass,
            gap,
        });
    }

    pub fn print_summary(&self) {
        println!("\n## Results\n");
        println!("| benchmark | metric | value |\n|---|---|---|");
        for [bench, metric, value] in &self.rows {
            println!("| {bench} | {metric} | {value} |");
        }
        if self.targets.is_empty() {
            return;
        }
        println!("\n| target | goal | measured | result |\n|---|---|---|---|");
        for t in &self.targets {
            println!(
                "| {} | {} | {} | {} ({}) |",
                t.name,
                t.goal,
                t.measured,
                if t.pass { "PASS" } else { "MISS" },
                t.gap
            );
        }
    }
}
