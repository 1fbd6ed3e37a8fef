//! The programme report, `explain`, `project` and the claims check: figures computed from the
//! projections, each with its period and scope and the events behind it.

use serde::Serialize;
use serde_json::json;

use super::figure_text;
use super::late_entries::{LateEntry, late_entries_among};
pub use super::reconcile::{ClaimCheck, ClaimReason, ClaimsReport, ReasonEvent};
use super::{App, AppError};
use crate::domain::Date;
use crate::projection::checkpoint::Checkpoints;
use crate::projection::engine::{self, EngineError};
use crate::projection::{AnyProjection, AsOf, Figure, Period, Query, Source};

/// How a figure is counted: over a period of occurred days, or as a state on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    Period,
    OnDay,
}

/// One figure of the programme report.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub metric: &'static str,
    pub section: char,
    pub projection: &'static str,
    pub basis: Basis,
    /// The default period (or, for a state, the day is its end).
    pub from: (i32, u32, u32),
    pub to: (i32, u32, u32),
    pub label_en: &'static str,
    pub label_zh: &'static str,
    pub money: bool,
}

const Y2023: (i32, u32, u32) = (2023, 1, 1);
const END2023: (i32, u32, u32) = (2023, 12, 31);
const Y2020: (i32, u32, u32) = (2020, 1, 1);

macro_rules! m {
    ($metric:literal, $section:literal, $proj:literal, $basis:ident, $from:expr, $label_en:literal, $label_zh:literal, $money:literal) => {
        MetricDef {
            metric: $metric,
            section: $section,
            projection: $proj,
            basis: Basis::$basis,
            from: $from,
            to: END2023,
            label_en: $label_en,
            label_zh: $label_zh,
            money: $money,
        }
    };
}

/// Every figure of the source report, in its order (sections A–E of FIGURES.md).
pub const METRICS: &[MetricDef] = &[
    m!(
        "cadres_paired",
        'A',
        "pairings",
        OnDay,
        Y2023,
        "bureau cadres in a pairing",
        "局机关干部结对帮扶 (名)",
        false
    ),
    m!(
        "paired_orphans",
        'A',
        "pairings",
        OnDay,
        Y2023,
        "orphans paired",
        "孤儿 (名)",
        false
    ),
    m!(
        "paired_severely_disabled",
        'A',
        "pairings",
        OnDay,
        Y2023,
        "severely disabled people in hardship paired",
        "困难重度残疾人 (名)",
        false
    ),
    m!(
        "paired_poor_households",
        'A',
        "pairings",
        OnDay,
        Y2023,
        "extremely poor households paired",
        "特困家庭 (户)",
        false
    ),
    m!(
        "contacts",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "contacts by phone, video or message",
        "电话、视频、信息联系交流 (次)",
        false
    ),
    m!(
        "home_visits",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "home visits",
        "上门走访探视 (次)",
        false
    ),
    m!(
        "policy_followups",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "policy follow-ups with other agencies",
        "多方联系沟通落实有关政策 (次)",
        false
    ),
    m!(
        "difficulties_resolved",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "practical difficulties resolved",
        "帮助解决实际存在的困难 (个)",
        false
    ),
    m!(
        "errands_done",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "things done on the recipient's behalf",
        "帮办实事 (件)",
        false
    ),
    m!(
        "aid_given_fen",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "money and goods given (goods at value)",
        "资助资金(含物资折合) (元)",
        true
    ),
    m!(
        "escalations",
        'A',
        "activity_totals",
        Period,
        Y2023,
        "problems escalated to higher levels",
        "向上级反映需解决的问题 (个)",
        false
    ),
    m!(
        "placements_regular_class",
        'B',
        "placements",
        Period,
        Y2020,
        "disabled children in an ordinary class",
        "普通学校随班就读 (人)",
        false
    ),
    m!(
        "placements_special_school",
        'B',
        "placements",
        Period,
        Y2020,
        "disabled children in a special-education school",
        "特殊教育学校就读 (人)",
        false
    ),
    m!(
        "placements_home_teaching",
        'B',
        "placements",
        Period,
        Y2020,
        "disabled children taught at home",
        "送教上门 (人)",
        false
    ),
    m!(
        "placements_total",
        'B',
        "placements",
        Period,
        Y2020,
        "disabled children of school age placed",
        "安置适龄残疾儿童 (人)",
        false
    ),
    m!(
        "poverty_dropouts",
        'B',
        "census",
        Period,
        Y2020,
        "pupils who dropped out for poverty",
        "因贫辍学、失学 (人)",
        false
    ),
    m!(
        "student_aid_orphans_person_times",
        'C',
        "student_aid",
        Period,
        Y2023,
        "aid to orphans (person-times)",
        "资助孤儿 (人次)",
        false
    ),
    m!(
        "student_aid_unsupported_person_times",
        'C',
        "student_aid",
        Period,
        Y2023,
        "aid to children with no one to raise them (person-times)",
        "资助事实无人抚养儿童 (人次)",
        false
    ),
    m!(
        "student_aid_disabled_person_times",
        'C',
        "student_aid",
        Period,
        Y2023,
        "aid to disabled pupils (person-times)",
        "资助残疾学生 (人次)",
        false
    ),
    m!(
        "student_aid_paid_fen",
        'C',
        "student_aid",
        Period,
        Y2023,
        "aid money paid, all programmes",
        "资助补助资金 (元)",
        true
    ),
    m!(
        "pupils_orphans",
        'D',
        "census",
        OnDay,
        Y2023,
        "orphans in school",
        "孤儿在校 (名)",
        false
    ),
    m!(
        "pupils_single_parent",
        'D',
        "census",
        OnDay,
        Y2023,
        "children of single-parent families in school",
        "单亲家庭儿童在校 (名)",
        false
    ),
    m!(
        "pupils_left_behind",
        'D',
        "census",
        OnDay,
        Y2023,
        "left-behind children in school",
        "留守儿童在校 (名)",
        false
    ),
    m!(
        "pupils_disabled",
        'D',
        "census",
        OnDay,
        Y2023,
        "disabled children in school",
        "残疾儿童在校 (名)",
        false
    ),
    m!(
        "welfare_home_orphans_with_plan",
        'E',
        "care_plans",
        OnDay,
        Y2023,
        "welfare-home orphans with a one-pupil-one-plan",
        "市福利院孤儿一生一案 (名)",
        false
    ),
    m!(
        "welfare_home_plan_schools",
        'E',
        "care_plans",
        OnDay,
        Y2023,
        "schools those orphans attend",
        "就读学校 (所)",
        false
    ),
    m!(
        "one_to_one_plans",
        'E',
        "care_plans",
        OnDay,
        Y2023,
        "one-to-one plans for orphans and unsupported children",
        "孤儿和事实无人抚养儿童1对1帮扶计划 (份)",
        false
    ),
];

/// The section titles, in English and Chinese.
pub fn section_title(section: char, zh: bool) -> &'static str {
    match (section, zh) {
        ('A', false) => "A. Bureau cadres paired with people in hardship (since 2023)",
        ('A', true) => "一、局机关干部结对关爱 (2023年以来)",
        ('B', false) => "B. Schooling for disabled children, 2020–2023",
        ('B', true) => "二、适龄残疾儿童安置 (2020年至2023年)",
        ('C', false) => "C. Student financial aid, 2023",
        ('C', true) => "三、学生资助 (2023年)",
        ('D', false) => "D. Special children in school",
        ('D', true) => "四、特殊儿童在校接受教育",
        ('E', false) => "E. Individual care plans",
        ('E', true) => "五、关爱帮扶方案",
        _ => "",
    }
}

pub fn metric_def(metric: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.metric == metric)
}

/// A registered projection, as `carelog projections` and `GET /v1/projections` list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectionInfo {
    pub name: &'static str,
    pub version: u32,
    pub about: &'static str,
}

/// Every registered projection, in the registry's order.
pub fn projection_list() -> Vec<ProjectionInfo> {
    crate::projections::registry()
        .iter()
        .map(|p| ProjectionInfo {
            name: p.name(),
            version: p.version(),
            about: p.about(),
        })
        .collect()
}

fn unknown_projection(name: &str) -> AppError {
    AppError::UnknownProjection {
        name: name.to_string(),
        known: crate::projections::registry()
            .iter()
            .map(|p| p.name())
            .collect(),
    }
}

/// Refuses a name no registered projection has, before any replay is paid for.
pub fn check_projection_name(name: &str) -> Result<(), AppError> {
    if crate::projections::registry()
        .iter()
        .any(|p| p.name() == name)
    {
        Ok(())
    } else {
        Err(unknown_projection(name))
    }
}

/// Refuses a name no report figure has, before any replay is paid for.
pub fn check_metric_name(metric: &str) -> Result<&'static MetricDef, AppError> {
    metric_def(metric).ok_or_else(|| AppError::UnknownMetric {
        metric: metric.to_string(),
    })
}

fn date((y, m, d): (i32, u32, u32)) -> Date {
    Date::ymd(y, m, d).unwrap_or(Date(chrono::NaiveDate::MIN))
}

impl MetricDef {
    /// The period this figure counts: the override, or its default.
    pub fn period(&self, override_period: Option<Period>) -> Period {
        override_period.unwrap_or(Period {
            from: date(self.from),
            to: date(self.to),
        })
    }

    /// The query for this figure, with the day capped by what the records knew.
    fn query(&self, period: Period, as_of_day: Option<Date>) -> Query {
        let on = as_of_day.map_or(period.to, |d| d.min(period.to));
        match self.basis {
            Basis::Period => Query {
                period: Some(period),
                on: Some(on),
                ..Query::default()
            },
            Basis::OnDay => Query {
                period: None,
                on: Some(on),
                ..Query::default()
            },
        }
    }

    pub(super) fn period_text(&self, period: Period, as_of_day: Option<Date>) -> String {
        self.period_text_in(period, as_of_day, false)
    }

    fn period_text_in(&self, period: Period, as_of_day: Option<Date>, zh: bool) -> String {
        match self.basis {
            Basis::Period => figure_text::period_text(period, zh),
            Basis::OnDay => {
                figure_text::on_day_text(as_of_day.map_or(period.to, |d| d.min(period.to)), zh)
            }
        }
    }
}

/// A figure of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFigure {
    pub metric: &'static str,
    pub value: i64,
    pub period: String,
    pub scope: &'static str,
    pub section: String,
    pub label: &'static str,
    /// The value as shown: money as 元 with two decimals.
    pub value_text: String,
    pub events: usize,
}

/// The position and recorded time a report was computed as of.
#[derive(Debug, Clone, Serialize)]
pub struct AsOfInfo {
    pub position: u64,
    pub recorded_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub as_of: AsOfInfo,
    pub figures: Vec<ReportFigure>,
}

/// A figure with the events behind it (`explain`).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub metric: String,
    pub value: i64,
    pub period: String,
    pub as_of: AsOfInfo,
    pub events: Vec<Source>,
    pub adjustments: Vec<crate::projection::Adjustment>,
    /// The events among them recorded late, with the reason given.
    pub late_entries: Vec<LateEntry>,
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Log(l) => AppError::Log(l),
            EngineError::Undecodable { position, detail } => AppError::Usage(format!(
                "the event at position {position} cannot be read by this build ({detail}): upgrade carelog"
            )),
        }
    }
}

/// Called with (events done, events to do) during long replays.
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64);

pub(super) struct Replayed {
    registry: Vec<Box<dyn AnyProjection>>,
    pub(super) states: Vec<Box<dyn std::any::Any + Send>>,
    /// The engine's shared pairing book, as of the same position as the states.
    book: crate::projection::PairingBook,
    pub(super) names: Vec<&'static str>,
    pub(super) info: AsOfInfo,
    as_of_day: Option<Date>,
}

impl Replayed {
    fn figures(&self, projection: &str, query: &Query) -> Vec<Figure> {
        let Some(i) = self.names.iter().position(|n| *n == projection) else {
            return Vec::new();
        };
        let p = self.registry.iter().find(|p| p.name() == projection);
        p.map(|p| p.figures(self.states[i].as_ref(), &self.book, query))
            .unwrap_or_default()
    }

    /// A figure, or an error naming it when its sum overflowed (never a wrapped number).
    pub(super) fn figure(
        &self,
        def: &MetricDef,
        period: Period,
    ) -> Result<Option<Figure>, AppError> {
        let query = def.query(period, self.as_of_day);
        let figure = self
            .figures(def.projection, &query)
            .into_iter()
            .find(|f| f.metric == def.metric);
        if figure.as_ref().is_some_and(|f| f.overflowed) {
            return Err(AppError::SumOverflow {
                figure: def.metric.to_string(),
            });
        }
        Ok(figure)
    }
}

impl App {
    fn checkpoints(&self) -> Checkpoints {
        Checkpoints::for_store(self.log().path())
    }

    /// Replays the named projections (all when empty) as of a point, in one pass; from the
    /// timeline when this process holds one (all projections, then).
    pub(super) fn replay(
        &self,
        names: &[&str],
        as_of: AsOf,
        progress: ProgressFn<'_>,
    ) -> Result<Replayed, AppError> {
        let registry = crate::projections::registry();
        let from_timeline = self.holds_timeline();
        let chosen: Vec<&dyn AnyProjection> = registry
            .iter()
            .filter(|p| from_timeline || names.is_empty() || names.contains(&p.name()))
            .map(|p| p.as_ref())
            .collect();
        // Under the timeline's lock: the clone of the nearest snapshot (after catching up with
        // the log when asked past it), or none when the timeline is not held (it may have been
        // turned off since `from_timeline` was read).
        let start = if from_timeline {
            let target = engine::resolve(self.log(), as_of)?;
            let mut guard = self.lock_timeline();
            if self.holds_timeline() {
                let timeline = guard.get_or_insert_with(|| self.new_timeline());
                Some((timeline.start_for(self.log(), target, progress)?, target))
            } else {
                None
            }
        } else {
            None
        };
        let (rebuilt, chosen) = match start {
            // The tail is replayed outside the lock: other questions need not wait for it.
            Some((start, target)) => (
                start.replay_to(self.log(), &chosen, target, progress)?,
                chosen,
            ),
            None => {
                let chosen: Vec<&dyn AnyProjection> = chosen
                    .into_iter()
                    .filter(|p| names.is_empty() || names.contains(&p.name()))
                    .collect();
                let checkpoints = self.checkpoints();
                let use_checkpoints = self
                    .use_checkpoints
                    .load(std::sync::atomic::Ordering::Relaxed);
                let rebuilt = engine::replay(
                    self.log(),
                    &chosen,
                    as_of,
                    use_checkpoints.then_some(&checkpoints),
                    progress,
                )?;
                (rebuilt, chosen)
            }
        };
        let names: Vec<&'static str> = chosen.iter().map(|p| p.name()).collect();
        let recorded_at = if rebuilt.position == 0 {
            None
        } else {
            self.log()
                .event_at(rebuilt.position)?
                .map(|e| e.recorded_at)
        };
        let as_of_day = match as_of {
            AsOf::Now => None,
            _ => recorded_at
                .as_ref()
                .map(|t| Date(crate::time::shanghai_date(t))),
        };
        let info = AsOfInfo {
            position: rebuilt.position,
            recorded_at: recorded_at.map(|t| t.to_rfc3339()),
        };
        Ok(Replayed {
            registry,
            states: rebuilt.states,
            book: rebuilt.book,
            names,
            info,
            as_of_day,
        })
    }

    /// The programme report: every figure of the source report, from the records.
    pub fn report(
        &self,
        as_of: AsOf,
        period: Option<Period>,
        zh: bool,
        progress: ProgressFn<'_>,
    ) -> Result<Report, AppError> {
        let replayed = self.replay(&[], as_of, progress)?;
        let mut figures = Vec::new();
        for def in METRICS {
            let p = def.period(period);
            let fig = replayed.figure(def, p)?;
            let value = fig.as_ref().map_or(0, |f| f.value);
            figures.push(ReportFigure {
                metric: def.metric,
                value,
                period: def.period_text_in(p, replayed.as_of_day, zh),
                scope: "庆阳市 (whole programme)",
                section: def.section.to_string(),
                label: if zh { def.label_zh } else { def.label_en },
                value_text: figure_text::value_text(value, def.money),
                events: fig.map_or(0, |f| f.events.len()),
            });
        }
        Ok(Report {
            as_of: replayed.info,
            figures,
        })
    }

    /// A figure and exactly the events behind it.
    pub fn explain(
        &self,
        metric: &str,
        as_of: AsOf,
        period: Option<Period>,
        progress: ProgressFn<'_>,
    ) -> Result<Explanation, AppError> {
        let def = check_metric_name(metric)?;
        let replayed = self.replay(&[def.projection], as_of, progress)?;
        let p = def.period(period);
        let fig = replayed.figure(def, p)?.unwrap_or(Figure {
            metric: metric.into(),
            overflowed: false,
            value: 0,
            events: Vec::new(),
            adjustments: Vec::new(),
        });
        let notes = self.late_entry_notes(replayed.info.position)?;
        Ok(Explanation {
            metric: fig.metric,
            value: fig.value,
            period: def.period_text(p, replayed.as_of_day),
            as_of: replayed.info,
            late_entries: late_entries_among(&fig.events, &notes),
            events: fig.events,
            adjustments: fig.adjustments,
        })
    }

    /// One projection's view, as of a point, for a period.
    pub fn project(
        &self,
        name: &str,
        as_of: AsOf,
        query: Query,
        progress: ProgressFn<'_>,
    ) -> Result<serde_json::Value, AppError> {
        check_projection_name(name)?;
        let replayed = self.replay(&[name], as_of, progress)?;
        let mut query = query;
        if query.on.is_none() {
            query.on = query.period.map(|p| p.to).or(replayed.as_of_day);
        }
        let p = replayed
            .registry
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| unknown_projection(name))?;
        let state = replayed
            .names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| replayed.states.get(i))
            .ok_or_else(|| unknown_projection(name))?;
        let mut view = p.query(state.as_ref(), &replayed.book, &query);
        if let Some(sums) = view
            .get(crate::projection::OVERFLOWED_KEY)
            .and_then(|v| v.as_array())
        {
            let names: Vec<&str> = sums.iter().filter_map(|s| s.as_str()).take(10).collect();
            return Err(AppError::SumOverflow {
                figure: format!("{name}: {}", names.join(", ")),
            });
        }
        view["as_of"] = json!(replayed.info);
        Ok(view)
    }
}
