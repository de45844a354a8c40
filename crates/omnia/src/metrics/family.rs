//! Metrics with labels: one counter or histogram per set of label values (`trigger="http"`,
//! later a component's name), made on first use.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::histogram::Buckets;

/// Counters or histograms of one name told apart by labels (`trigger="http"`), one member per
/// set of label values seen: [`CounterFamily`] and [`HistogramFamily`].
///
/// Members are made on first use, so the label values need not be known in advance (a
/// component's name, say); a member is never removed.
#[derive(Debug)]
pub struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    members: RwLock<Vec<Member<T>>>,
}

/// One member of a [`Family`]: its label values (in the order of the family's labels).
#[derive(Debug)]
struct Member<T> {
    values: Box<[Box<str>]>,
    value: Arc<T>,
}

/// A member's labels, as `(label, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Counters told apart by labels.
pub type CounterFamily = Family<AtomicU64>;
/// Histograms of durations told apart by labels.
pub type HistogramFamily = Family<Buckets>;

impl<T: Default> Family<T> {
    /// A family named `name` whose members carry the labels `labels`, in this order.
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            members: RwLock::new(Vec::new()),
        }
    }

    /// The member with the label `values` (one per label, in order), made if new.
    fn member(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(
            values.len(),
            self.labels.len(),
            "{}: label values",
            self.name
        );
        if let Some(member) = self
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|member| same(&member.values, values))
        {
            return Arc::clone(&member.value);
        }
        let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(member) = members.iter().find(|member| same(&member.values, values)) {
            return Arc::clone(&member.value);
        }
        let value = Arc::new(T::default());
        members.push(Member {
            values: values.iter().map(|v| (*v).into()).collect(),
            value: Arc::clone(&value),
        });
        value
    }

    /// Every member so far, with its labels as `(label, value)` pairs.
    pub fn members(&self) -> Vec<(Labels, Arc<T>)> {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|member| {
                let labels = self
                    .labels
                    .iter()
                    .zip(member.values.iter())
                    .map(|(label, value)| (*label, value.to_string()))
                    .collect();
                (labels, Arc::clone(&member.value))
            })
            .collect()
    }
}

impl Family<AtomicU64> {
    /// Adds one to the counter with the label `values`.
    pub fn inc(&self, values: &[&str]) {
        self.member(values).fetch_add(1, Ordering::Relaxed);
    }

    /// The value of the counter with the label `values` (0 if it was never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|member| same(&member.values, values))
            .map_or(0, |member| member.value.load(Ordering::Relaxed))
    }
}

impl Family<Buckets> {
    /// Records one duration in the histogram with the label `values` (and hands it to the
    /// installed [`Recorder`](super::Recorder), if any).
    pub fn record(&'static self, values: &[&str], duration: Duration) {
        self.member(values).observe(duration);
        if let Some(recorder) = super::recorder() {
            let labels: Vec<(&'static str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(values.iter().copied())
                .collect();
            recorder.record(self.name, &labels, duration.as_secs_f64());
        }
    }
}

impl<T: Default> Family<T> {
    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The family's help text.
    pub fn help(&self) -> &'static str {
        self.help
    }
}

impl Family<AtomicU64> {
    /// Writes one line per counter in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        for (labels, value) in self.members() {
            let labels = label_pairs(&labels);
            let labels = labels.trim_end_matches(',');
            let _ = writeln!(
                out,
                "{}{{{labels}}} {}",
                self.name,
                value.load(Ordering::Relaxed)
            );
        }
    }
}

impl Family<Buckets> {
    /// Writes every histogram's buckets in the Prometheus text format.
    pub(super) fn render(&self, out: &mut String) {
        for (labels, buckets) in self.members() {
            buckets.render(out, self.name, &label_pairs(&labels));
        }
    }
}

/// Whether a member's label values are `values`.
fn same(known: &[Box<str>], values: &[&str]) -> bool {
    known.iter().map(AsRef::as_ref).eq(values.iter().copied())
}

/// `labels` as Prometheus label pairs, each followed by a comma: `a="x",b="y",`.
fn label_pairs(labels: &Labels) -> String {
    let mut out = String::new();
    for (label, value) in labels {
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{label}=\"{value}\",");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static CALLS: CounterFamily = CounterFamily::new(
        "omnia_test_calls_total",
        "Test calls.",
        &["trigger", "outcome"],
    );
    static TIMES: HistogramFamily =
        HistogramFamily::new("omnia_test_call_seconds", "Test durations.", &["trigger"]);

    #[test]
    fn each_set_of_label_values_is_its_own_member() {
        CALLS.inc(&["http", "ok"]);
        CALLS.inc(&["http", "ok"]);
        CALLS.inc(&["messaging", "trap"]);
        let mut page = String::new();
        CALLS.render(&mut page);
        assert!(
            page.contains("omnia_test_calls_total{trigger=\"http\",outcome=\"ok\"} 2\n"),
            "{page}"
        );
        assert!(
            page.contains("omnia_test_calls_total{trigger=\"messaging\",outcome=\"trap\"} 1\n"),
            "{page}"
        );
        assert_eq!(CALLS.get(&["http", "trap"]), 0);
    }

    #[test]
    fn histogram_members_carry_their_labels_before_the_bound() {
        TIMES.record(&["a\"b"], Duration::from_millis(3));
        let mut page = String::new();
        TIMES.render(&mut page);
        assert!(
            page.contains("omnia_test_call_seconds_bucket{trigger=\"a\\\"b\",le=\"0.005\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains("omnia_test_call_seconds_count{trigger=\"a\\\"b\"} 1\n"),
            "{page}"
        );
    }
}
