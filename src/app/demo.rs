//! `carelog demo`: the Qingyang programme's records, built event by event from a seed, through
//! the same validated append path as any other input.
//!
//! The scenario reproduces every figure of `shared/seed/FIGURES.md` from individual events with a
//! believable spread: 8 counties, 24 townships, 120 schools; 40 cadres (three hand their pairing
//! over mid-year, so 37 hold one at the year's end); 53 pairings; a year of contacts, visits
//! (group trips to Maojing township among them), follow-ups, difficulties, errands, aid in cash
//! and goods, escalations at every stage; a few entries voided or corrected; ~70,000 pupils with
//! dated categories, 7,714 aid payments, 484 placements, care plans; and the report's figures
//! recorded as claims. Historical facts (enrollments, earlier placements) are entered in early
//! 2023, as a bureau adopting the system would; 2023's events are recorded as they happen.

use std::time::Instant as WallClock;

use chrono::{Duration, NaiveDate, NaiveTime, Offset, TimeZone};
use uuid::Uuid;

use super::{App, AppError, Keep};
use crate::codec::PayloadType;
use crate::domain::cloudevent::IncomingEvent;
use crate::domain::events::*;
use crate::domain::{Date, DomainEvent, Money};
use crate::rng::SplitMix64;
use crate::time::Instant;

/// The default seed.
pub const DEFAULT_SEED: u64 = 20231229;
/// Events per append batch (each batch is all-or-nothing and shares one flush).
const DEMO_BATCH_EVENTS: usize = 4_000;

/// What the demo built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub events: u64,
    pub head_position: u64,
    pub seconds: f64,
    pub pupils: u32,
    pub pairings: u32,
    pub claims: u32,
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// A time of day in Asia/Shanghai (+08:00).
fn at(date: NaiveDate, minutes_after_8am: i64) -> Instant {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap_or(chrono::Utc.fix());
    let base = date.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default());
    let local = offset
        .from_local_datetime(&base)
        .single()
        .unwrap_or_else(|| offset.from_utc_datetime(&base));
    local + Duration::minutes(minutes_after_8am)
}

/// One event in the making: when it happened, when it is recorded, what it is.
struct Planned {
    recorded_at: Instant,
    seq: u64,
    id: Uuid,
    occurred_at: Instant,
    event: DomainEvent,
}

struct Builder {
    rng: SplitMix64,
    planned: Vec<Planned>,
    seq: u64,
    /// The backfill clock: historical facts are entered from early January 2023.
    backfill_at: Instant,
}

impl Builder {
    fn id(&mut self, ms: i64) -> Uuid {
        let mut bytes = [0u8; 10];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes()[..2]);
        uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &bytes).into_uuid()
    }

    fn entity(&mut self) -> Uuid {
        let ms = self.backfill_at.timestamp_millis();
        self.id(ms)
    }

    /// A live event: recorded a little after it happened.
    fn live(&mut self, occurred_at: Instant, event: DomainEvent) -> Uuid {
        let delay = Duration::minutes(30 + self.rng.in_range(0, 600));
        let recorded_at = occurred_at + delay;
        self.push(occurred_at, recorded_at, event)
    }

    /// A historical fact entered during the backfill.
    fn backfill(&mut self, occurred_at: Instant, event: DomainEvent) -> Uuid {
        self.backfill_at += Duration::seconds(15);
        let recorded_at = self.backfill_at.max(occurred_at + Duration::minutes(30));
        self.push(occurred_at, recorded_at, event)
    }

    fn push(&mut self, occurred_at: Instant, recorded_at: Instant, event: DomainEvent) -> Uuid {
        let id = self.id(recorded_at.timestamp_millis());
        self.seq += 1;
        self.planned.push(Planned {
            recorded_at,
            seq: self.seq,
            id,
            occurred_at,
            event,
        });
        id
    }
}

const COUNTIES: [(&str, &str); 8] = [
    ("西峰区", "621002"),
    ("庆城县", "621021"),
    ("环县", "621022"),
    ("华池县", "621023"),
    ("合水县", "621024"),
    ("正宁县", "621025"),
    ("宁县", "621026"),
    ("镇原县", "621027"),
];

const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "明", "华", "芳", "军", "丽", "强", "静", "磊", "娟", "伟", "霞", "杰",
];

fn name(rng: &mut SplitMix64) -> String {
    format!(
        "{}{}{}",
        rng.pick(&SURNAMES),
        rng.pick(&GIVEN),
        rng.pick(&GIVEN)
    )
}

/// The report's figures, as the demo claims them (metric, value, comparison).
pub const CLAIMED: &[(&str, i64, Comparison)] = &[
    ("cadres_paired", 37, Comparison::Exactly),
    ("paired_orphans", 9, Comparison::Exactly),
    ("paired_severely_disabled", 24, Comparison::Exactly),
    ("paired_poor_households", 20, Comparison::Exactly),
    ("contacts", 374, Comparison::Exactly),
    ("home_visits", 212, Comparison::Exactly),
    ("policy_followups", 172, Comparison::Exactly),
    ("difficulties_resolved", 42, Comparison::Exactly),
    ("errands_done", 31, Comparison::Exactly),
    ("aid_given_fen", 7_040_400, Comparison::Exactly),
    ("escalations", 29, Comparison::Exactly),
    ("placements_regular_class", 326, Comparison::Exactly),
    ("placements_special_school", 33, Comparison::Exactly),
    ("placements_home_teaching", 125, Comparison::Exactly),
    ("placements_total", 484, Comparison::Exactly),
    ("poverty_dropouts", 0, Comparison::Exactly),
    ("student_aid_orphans_person_times", 532, Comparison::Exactly),
    (
        "student_aid_unsupported_person_times",
        1864,
        Comparison::Exactly,
    ),
    (
        "student_aid_disabled_person_times",
        5318,
        Comparison::Exactly,
    ),
    ("student_aid_paid_fen", 411_820_000, Comparison::Exactly),
    ("pupils_orphans", 808, Comparison::Exactly),
    ("pupils_single_parent", 19_523, Comparison::Exactly),
    ("pupils_left_behind", 45_132, Comparison::Exactly),
    ("pupils_disabled", 2_478, Comparison::Exactly),
    ("welfare_home_orphans_with_plan", 18, Comparison::Exactly),
    ("welfare_home_plan_schools", 6, Comparison::Exactly),
    ("one_to_one_plans", 2_000, Comparison::MoreThan),
];

/// The number of one-to-one plans the demo opens ("more than 2,000").
pub const ONE_TO_ONE_PLANS: usize = 2_046;

struct Org {
    city: Uuid,
    welfare_home: Uuid,
    /// (county, townships)
    townships: Vec<Uuid>,
    maojing: Uuid,
    schools: Vec<Uuid>,
    special_schools: Vec<Uuid>,
    /// teachers by school index
    teachers: Vec<Vec<Uuid>>,
}

fn build_org(b: &mut Builder) -> Org {
    let start = at(day(2023, 1, 3), 60);
    let city = b.entity();
    b.backfill(
        start,
        DomainEvent::UnitRegistered(UnitRegisteredV1 {
            unit_id: city,
            name: "庆阳市教育局".into(),
            kind: UnitKind::CityBureau,
            parent_id: None,
            official_code: Some("621000".into()),
        }),
    );
    let welfare_home = b.entity();
    b.backfill(
        start,
        DomainEvent::UnitRegistered(UnitRegisteredV1 {
            unit_id: welfare_home,
            name: "庆阳市儿童福利院".into(),
            kind: UnitKind::WelfareHome,
            parent_id: Some(city),
            official_code: None,
        }),
    );
    let mut townships = Vec::new();
    let mut schools = Vec::new();
    let mut maojing = city;
    let mut special_schools = Vec::new();
    for (ci, (county_name, code)) in COUNTIES.iter().enumerate() {
        let county = b.entity();
        b.backfill(
            start,
            DomainEvent::UnitRegistered(UnitRegisteredV1 {
                unit_id: county,
                name: (*county_name).into(),
                kind: UnitKind::County,
                parent_id: Some(city),
                official_code: Some((*code).into()),
            }),
        );
        for t in 0..3 {
            let township = b.entity();
            let tname = if ci == 2 && t == 0 {
                "毛井乡".to_string()
            } else {
                format!("{county_name}第{}乡镇", t + 1)
            };
            if ci == 2 && t == 0 {
                maojing = township;
            }
            b.backfill(
                start,
                DomainEvent::UnitRegistered(UnitRegisteredV1 {
                    unit_id: township,
                    name: tname.clone(),
                    kind: UnitKind::Township,
                    parent_id: Some(county),
                    official_code: None,
                }),
            );
            townships.push(township);
            for s in 0..5 {
                let school = b.entity();
                let sname = if s == 0 {
                    format!("{tname}中心小学")
                } else if s == 4 {
                    format!("{tname}初级中学")
                } else {
                    format!("{tname}第{s}小学")
                };
                b.backfill(
                    start,
                    DomainEvent::UnitRegistered(UnitRegisteredV1 {
                        unit_id: school,
                        name: sname,
                        kind: UnitKind::School,
                        parent_id: Some(township),
                        official_code: None,
                    }),
                );
                schools.push(school);
            }
        }
        if ci < 2 {
            let special = b.entity();
            b.backfill(
                start,
                DomainEvent::UnitRegistered(UnitRegisteredV1 {
                    unit_id: special,
                    name: format!("{county_name}特殊教育学校"),
                    kind: UnitKind::School,
                    parent_id: Some(county),
                    official_code: None,
                }),
            );
            special_schools.push(special);
        }
    }
    let mut teachers = Vec::new();
    let all_schools: Vec<Uuid> = schools
        .iter()
        .chain(special_schools.iter())
        .copied()
        .collect();
    for school in &all_schools {
        let mut here = Vec::new();
        for _ in 0..4 {
            let t = b.entity();
            let n = name(&mut b.rng);
            b.backfill(
                start,
                DomainEvent::StaffRegistered(StaffRegisteredV1 {
                    person_id: t,
                    name: n,
                    role: StaffRole::Teacher,
                    unit_id: *school,
                    since: Date(day(2015, 9, 1)),
                }),
            );
            here.push(t);
        }
        teachers.push(here);
    }
    Org {
        city,
        welfare_home,
        townships,
        maojing,
        schools,
        special_schools,
        teachers,
    }
}

/// Builds the whole programme into an empty store.
pub fn run(
    app: &App,
    seed: u64,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<DemoSummary, AppError> {
    if app.log().head_position() > 0 {
        return Err(AppError::Usage(format!(
            "the store at {} already holds {} events: the demo builds into an empty store only (pass --data with a new directory)",
            app.log().path().display(),
            app.log().head_position()
        )));
    }
    let started = WallClock::now();
    let mut b = Builder {
        rng: SplitMix64(seed),
        planned: Vec::new(),
        seq: 0,
        backfill_at: at(day(2023, 1, 3), 60),
    };
    let org = build_org(&mut b);
    let pairings = build_pairings(&mut b, &org);
    let pupils = build_pupils(&mut b, &org);
    build_claims(&mut b);
    progress("planned", b.planned.len() as u64, b.planned.len() as u64);

    // Append in recorded order: the log's recorded times never go back.
    let mut planned = std::mem::take(&mut b.planned);
    planned.sort_by(|x, y| x.recorded_at.cmp(&y.recorded_at).then(x.seq.cmp(&y.seq)));
    let total = planned.len() as u64;
    let mut done = 0u64;
    let keep = Keep {
        recorded_by: true,
        recorded_at: true,
    };
    let mut batch = Vec::with_capacity(DEMO_BATCH_EVENTS);
    let mut iter = planned.into_iter().peekable();
    while iter.peek().is_some() {
        batch.clear();
        for p in iter.by_ref().take(DEMO_BATCH_EVENTS) {
            let by = recorder_of(&p.event);
            batch.push(IncomingEvent {
                id: Some(p.id),
                event: p.event,
                occurred_at: p.occurred_at,
                recorded_by: Some(by),
                recorded_at: Some(p.recorded_at),
                correlation_id: None,
                causation_id: None,
            });
        }
        let n = batch.len() as u64;
        app.append(std::mem::take(&mut batch), "demo", keep, &|_, _| Ok(()))?;
        done += n;
        progress("appended", done, total);
    }
    Ok(DemoSummary {
        events: done,
        head_position: app.log().head_position(),
        seconds: started.elapsed().as_secs_f64(),
        pupils,
        pairings,
        claims: CLAIMED.len() as u32,
    })
}

/// Who records each kind of event in the scenario.
fn recorder_of(event: &DomainEvent) -> String {
    use DomainEvent as E;
    match event {
        E::StudentAidPaid(_) => "county-aid-office".into(),
        E::ClaimFiled(_) => "city-bureau-office".into(),
        E::ContactRecorded(_)
        | E::VisitRecorded(_)
        | E::PolicyFollowupRecorded(_)
        | E::ErrandDone(_)
        | E::AidGiven(_)
        | E::DifficultyRaised(_)
        | E::DifficultyResolved(_)
        | E::DifficultyDropped(_)
        | E::EscalationRaised(_) => "cadre-app".into(),
        E::CarePlanOpened(_) | E::CarePlanReviewed(_) => "school-office".into(),
        _ => "bureau-registry".into(),
    }
}

/// A random day strictly between two days (inclusive of `from`), avoiding none.
fn day_between(rng: &mut SplitMix64, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    from + Duration::days(rng.in_range(0, span))
}

struct PairingPlan {
    id: Uuid,
    established: NaiveDate,
    maojing: bool,
    /// Days the pairing cannot take activities (suspended).
    suspended: Option<(NaiveDate, NaiveDate)>,
    /// (holder, from) in order.
    holders: Vec<(Uuid, NaiveDate)>,
}

impl PairingPlan {
    fn active(&self, d: NaiveDate) -> bool {
        d >= self.established && !self.suspended.is_some_and(|(a, b)| a <= d && d < b)
    }

    fn holder_on(&self, d: NaiveDate) -> Uuid {
        self.holders
            .iter()
            .rev()
            .find(|(_, from)| *from <= d)
            .map(|(c, _)| *c)
            .unwrap_or_default()
    }
}

fn build_pairings(b: &mut Builder, org: &Org) -> u32 {
    let reg = at(day(2023, 1, 4), 0);
    // 40 cadres of the city bureau; 37 hold a pairing at the year's end.
    let cadres: Vec<Uuid> = (0..40)
        .map(|_| {
            let c = b.entity();
            let n = name(&mut b.rng);
            b.backfill(
                reg,
                DomainEvent::StaffRegistered(StaffRegisteredV1 {
                    person_id: c,
                    name: n,
                    role: StaffRole::Cadre,
                    unit_id: org.city,
                    since: Date(day(2018, 3, 1)),
                }),
            );
            c
        })
        .collect();
    // 9 orphans, 24 severely disabled people, 20 extremely poor households.
    let mut recipients = Vec::new();
    for i in 0..53 {
        let r = b.entity();
        let (kind, category, certifier) = match i {
            0..9 => (RecipientKind::Person, Category::Orphan, "县民政局"),
            9..33 => (
                RecipientKind::Person,
                Category::SeverelyDisabled,
                "县残疾人联合会",
            ),
            _ => (
                RecipientKind::Household,
                Category::ExtremelyPoor,
                "乡镇人民政府",
            ),
        };
        let maojing = i % 4 == 0;
        let unit = if maojing {
            org.maojing
        } else {
            *b.rng.pick(&org.townships)
        };
        let n = if kind == RecipientKind::Household {
            format!("{}家", b.rng.pick(&SURNAMES))
        } else {
            name(&mut b.rng)
        };
        let birth = match category {
            Category::Orphan => Some(Date(day(2008 + (i % 8), 1 + (i as u32 % 12), 10))),
            Category::SeverelyDisabled => Some(Date(day(1950 + (i * 2), 5, 1))),
            _ => None,
        };
        b.backfill(
            reg,
            DomainEvent::RecipientRegistered(RecipientRegisteredV1 {
                recipient_id: r,
                kind,
                name: n,
                unit_id: unit,
                birth_date: birth,
            }),
        );
        b.backfill(
            reg,
            DomainEvent::CategoryCertified(CategoryCertifiedV1 {
                recipient_id: r,
                category,
                certified_by: certifier.into(),
                from: Date(day(2021, 1 + (i as u32 % 12), 15)),
                to: None,
            }),
        );
        if kind == RecipientKind::Household {
            for m in 0..(2 + b.rng.below(3)) {
                let member = b.entity();
                let mn = name(&mut b.rng);
                let relation = ["户主", "配偶", "子女", "父母"][m as usize % 4];
                b.backfill(
                    reg,
                    DomainEvent::HouseholdMemberAdded(HouseholdMemberAddedV1 {
                        household_id: r,
                        member_id: member,
                        name: mn,
                        relation: relation.into(),
                        from: Date(day(2020, 1, 1)),
                    }),
                );
            }
        }
        recipients.push((r, maojing));
    }
    // Final holders: cadres 0..37, sixteen of them with two pairings.
    let mut final_holders: Vec<Uuid> = cadres[..37].to_vec();
    final_holders.extend_from_slice(&cadres[..16]);
    let mut plans = Vec::new();
    for (i, (recipient, maojing)) in recipients.iter().enumerate() {
        let p = b.entity();
        let established = day_between(&mut b.rng, day(2023, 1, 9), day(2023, 2, 24));
        let final_holder = final_holders[i];
        // Three pairings start with cadres 37..40 and pass to their final holders mid-year.
        let first_holder = if i < 3 { cadres[37 + i] } else { final_holder };
        b.live(
            at(established, 90),
            DomainEvent::PairingEstablished(PairingEstablishedV1 {
                pairing_id: p,
                cadre_id: first_holder,
                recipient_id: *recipient,
                on: Date(established),
            }),
        );
        let mut holders = vec![(first_holder, established)];
        if i < 3 {
            let on = day(2023, 6, 12 + i as u32);
            b.live(
                at(on, 30),
                DomainEvent::PairingTransferred(PairingTransferredV1 {
                    pairing_id: p,
                    to_cadre_id: final_holder,
                    on: Date(on),
                    reason: ["调任其他岗位", "退休", "工作调整"][i].into(),
                }),
            );
            holders.push((final_holder, on));
        }
        let suspended = if i == 20 {
            let (from, to) = (day(2023, 3, 6), day(2023, 4, 10));
            b.live(
                at(from, 10),
                DomainEvent::PairingSuspended(PairingSuspendedV1 {
                    pairing_id: p,
                    on: Date(from),
                    reason: "帮扶对象住院治疗".into(),
                }),
            );
            b.live(
                at(to, 10),
                DomainEvent::PairingResumed(PairingResumedV1 {
                    pairing_id: p,
                    on: Date(to),
                }),
            );
            Some((from, to))
        } else {
            None
        };
        plans.push(PairingPlan {
            id: p,
            established,
            maojing: *maojing,
            suspended,
            holders,
        });
    }
    // The cadres who handed over: one retired, one moved unit.
    b.live(
        at(day(2023, 6, 30), 0),
        DomainEvent::StaffLeft(StaffLeftV1 {
            person_id: cadres[38],
            on: Date(day(2023, 6, 30)),
            reason: "退休".into(),
        }),
    );
    b.live(
        at(day(2023, 7, 3), 0),
        DomainEvent::StaffMoved(StaffMovedV1 {
            person_id: cadres[37],
            unit_id: org.townships[0],
            on: Date(day(2023, 7, 3)),
        }),
    );

    build_activities(b, &plans);
    plans.len() as u32
}

/// A random active day of a pairing in 2023, from a day after it started to 20 December.
fn activity_day(rng: &mut SplitMix64, p: &PairingPlan) -> NaiveDate {
    loop {
        let d = day_between(rng, p.established + Duration::days(1), day(2023, 12, 20));
        if p.active(d) {
            return d;
        }
    }
}

fn build_activities(b: &mut Builder, plans: &[PairingPlan]) {
    let topics = [
        "询问身体状况",
        "了解孩子学习情况",
        "沟通低保办理进度",
        "节日问候",
        "了解冬季取暖准备",
        "提醒按时服药",
    ];
    // Contacts: 376 recorded, two voided as entered twice, one corrected: 374 remain.
    let mut contacts = Vec::new();
    for _ in 0..376 {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let channel = *b.rng.pick(&[
            Channel::Phone,
            Channel::Phone,
            Channel::Video,
            Channel::Message,
        ]);
        let summary = (*b.rng.pick(&topics)).to_string();
        let minutes = if channel == Channel::Message {
            None
        } else {
            Some(5 + b.rng.below(40) as u32)
        };
        let occurred = at(d, b.rng.in_range(60, 540));
        let ev = ContactRecordedV2 {
            pairing_id: p.id,
            channel,
            summary,
            duration_minutes: minutes,
        };
        let id = b.live(occurred, DomainEvent::ContactRecorded(ev.clone()));
        contacts.push((id, occurred, ev));
    }
    for (target, occurred, _) in contacts.iter().take(2) {
        b.live(
            *occurred + Duration::days(3),
            DomainEvent::RecordVoided(RecordVoidedV1 {
                target_event_id: *target,
                reason: "重复录入".into(),
            }),
        );
    }
    if let Some((target, occurred, ev)) = contacts.get(5) {
        let mut fixed = ev.clone();
        fixed.channel = if fixed.channel == Channel::Video {
            Channel::Phone
        } else {
            Channel::Video
        };
        if fixed.channel == Channel::Message {
            fixed.duration_minutes = None;
        }
        let payload = DomainEvent::ContactRecorded(fixed.clone())
            .encode()
            .unwrap_or_default();
        b.live(
            *occurred + Duration::days(2),
            DomainEvent::RecordCorrected(RecordCorrectedV1 {
                target_event_id: *target,
                reason: "联系方式录错".into(),
                event_type: ContactRecordedV2::EVENT_TYPE.into(),
                schema_version: 2,
                payload,
            }),
        );
    }

    // Visits: group trips to Maojing township, and the cadres' own trips; 213 recorded, one voided.
    let maojing: Vec<&PairingPlan> = plans.iter().filter(|p| p.maojing).collect();
    let mut visits = 0;
    let mut first_visit = None;
    for trip in 0..6 {
        let d = day(2023, 3 + trip as u32 + (trip as u32 / 2), 14 + trip as u32);
        let on_trip: Vec<&&PairingPlan> = maojing.iter().filter(|p| p.active(d)).collect();
        let trip_id = b.id(at(d, 0).timestamp_millis());
        let cadres: Vec<Uuid> = on_trip.iter().map(|p| p.holder_on(d)).collect();
        for (k, p) in on_trip.iter().enumerate() {
            let holder = p.holder_on(d);
            let mut companions: Vec<Uuid> =
                cadres.iter().copied().filter(|c| *c != holder).collect();
            companions.sort();
            companions.dedup();
            b.live(
                at(d, 120 + 40 * k as i64),
                DomainEvent::VisitRecorded(VisitRecordedV1 {
                    pairing_id: p.id,
                    trip: TripKind::Group,
                    group_trip_id: Some(trip_id),
                    companions,
                    observations: "集中走访，了解生产生活情况".into(),
                }),
            );
            visits += 1;
        }
    }
    while visits < 213 {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let obs = *b.rng.pick(&[
            "房屋漏雨，已记录",
            "家中生活物资充足",
            "孩子学习用品短缺",
            "老人身体状况稳定",
            "取暖设施需检修",
        ]);
        let occurred = at(d, b.rng.in_range(60, 480));
        let id = b.live(
            occurred,
            DomainEvent::VisitRecorded(VisitRecordedV1 {
                pairing_id: p.id,
                trip: TripKind::Own,
                group_trip_id: None,
                companions: Vec::new(),
                observations: obs.into(),
            }),
        );
        first_visit.get_or_insert((id, occurred));
        visits += 1;
    }
    if let Some((target, occurred)) = first_visit {
        b.live(
            occurred + Duration::days(1),
            DomainEvent::RecordVoided(RecordVoidedV1 {
                target_event_id: target,
                reason: "走访未实际成行".into(),
            }),
        );
    }

    for _ in 0..172 {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let (policy, agency) = *b.rng.pick(&[
            ("最低生活保障", "县民政局"),
            ("残疾人两项补贴", "县残联"),
            ("医疗救助", "县医保局"),
            ("危房改造", "县住建局"),
            ("教育资助", "县教育局"),
        ]);
        let outcome = *b.rng.pick(&["已落实", "材料已提交", "正在审核"]);
        let minutes = b.rng.in_range(60, 480);
        b.live(
            at(d, minutes),
            DomainEvent::PolicyFollowupRecorded(PolicyFollowupRecordedV1 {
                pairing_id: p.id,
                policy: policy.into(),
                agency: agency.into(),
                outcome: outcome.into(),
            }),
        );
    }
    for _ in 0..31 {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let (what, result) = *b.rng.pick(&[
            ("代办残疾证年审", "已办结"),
            ("协助申请临时救助", "已发放"),
            ("代购药品", "已送达"),
            ("联系维修取暖炉", "已修好"),
        ]);
        let minutes = b.rng.in_range(60, 480);
        b.live(
            at(d, minutes),
            DomainEvent::ErrandDone(ErrandDoneV1 {
                pairing_id: p.id,
                description: what.into(),
                result: result.into(),
            }),
        );
    }

    // Difficulties: 50 raised; 42 resolved, 3 dropped, 5 still open.
    for k in 0..50 {
        let p = b.rng.pick(plans);
        let d = loop {
            let d = activity_day(&mut b.rng, p);
            if d < day(2023, 11, 20) && p.active(d + Duration::days(20)) {
                break d;
            }
        };
        let diff = b.id(at(d, 0).timestamp_millis());
        let what = *b.rng.pick(&[
            "冬季缺少取暖煤",
            "孩子缺少学习桌椅",
            "看病报销手续不清",
            "房屋需要修缮",
        ]);
        b.live(
            at(d, 200),
            DomainEvent::DifficultyRaised(DifficultyRaisedV1 {
                difficulty_id: diff,
                pairing_id: p.id,
                description: what.into(),
            }),
        );
        let later = at(d + Duration::days(3 + b.rng.in_range(0, 15)), 300);
        if k < 42 {
            b.live(
                later,
                DomainEvent::DifficultyResolved(DifficultyResolvedV1 {
                    difficulty_id: diff,
                    how: "协调解决".into(),
                }),
            );
        } else if k < 45 {
            b.live(
                later,
                DomainEvent::DifficultyDropped(DifficultyDroppedV1 {
                    difficulty_id: diff,
                    reason: "帮扶对象已迁出".into(),
                }),
            );
        }
    }

    // Escalations: 29 raised, at every stage by the year's end.
    for k in 0..29 {
        let p = b.rng.pick(plans);
        let d = loop {
            let d = activity_day(&mut b.rng, p);
            if d < day(2023, 11, 1) {
                break d;
            }
        };
        let esc = b.id(at(d, 0).timestamp_millis());
        let level = *b.rng.pick(&["县民政局", "县残联", "县住建局", "市教育局"]);
        b.live(
            at(d, 240),
            DomainEvent::EscalationRaised(EscalationRaisedV1 {
                escalation_id: esc,
                pairing_id: p.id,
                to_level: level.into(),
                issue: "需上级协调解决的困难".into(),
            }),
        );
        let stage = k % 4; // 0 open, 1 acknowledged, 2 answered, 3 closed
        if stage >= 1 {
            b.live(
                at(d + Duration::days(5), 60),
                DomainEvent::EscalationAcknowledged(EscalationAcknowledgedV1 {
                    escalation_id: esc,
                    by: level.into(),
                }),
            );
        }
        if stage >= 2 {
            b.live(
                at(d + Duration::days(15), 60),
                DomainEvent::EscalationAnswered(EscalationAnsweredV1 {
                    escalation_id: esc,
                    answer: "已列入解决计划".into(),
                }),
            );
        }
        if stage >= 3 {
            b.live(
                at(d + Duration::days(25), 60),
                DomainEvent::EscalationClosed(EscalationClosedV1 {
                    escalation_id: esc,
                    outcome: "问题已解决".into(),
                }),
            );
        }
    }

    build_aid(b, plans);
}

/// Aid in cash and goods adding up, after one correction, to exactly 70,404 元.
fn build_aid(b: &mut Builder, plans: &[PairingPlan]) {
    const TOTAL_FEN: i64 = 7_040_400;
    let goods = [
        ("大米 (25kg)", 9_000),
        ("面粉 (25kg)", 8_500),
        ("食用油 (5L)", 6_800),
        ("棉被", 15_000),
        ("冬衣", 12_000),
        ("书包文具", 5_500),
        ("取暖煤 (吨)", 98_000),
    ];
    let sources = ["干部个人捐助", "局机关工会", "市慈善总会"];
    let mut given = 0i64;
    let cash_gifts = 36;
    let mut items: Vec<(&PairingPlan, NaiveDate, AidGivenV1)> = Vec::new();
    for _ in 0..60 {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let (item, unit) = *b.rng.pick(&goods);
        let q = 1 + b.rng.below(4) as u32;
        let value = unit * i64::from(q);
        // Leave at least 500 元 for each cash gift.
        if given + value > TOTAL_FEN - cash_gifts * 50_000 {
            continue;
        }
        given += value;
        items.push((
            p,
            d,
            AidGivenV1 {
                pairing_id: p.id,
                form: AidForm::Goods,
                value_fen: Money(value),
                fund_source: (*b.rng.pick(&sources)).into(),
                item: Some(item.into()),
                quantity: Some(q),
                unit_value_fen: Some(Money(unit)),
                receipt_ref: String::new(),
            },
        ));
    }
    // Cash in whole hundreds of yuan for the rest, the last gift taking the remainder.
    let remaining = TOTAL_FEN - given;
    let each = (remaining / cash_gifts / 10_000).max(1) * 10_000;
    for k in 0..cash_gifts {
        let p = b.rng.pick(plans);
        let d = activity_day(&mut b.rng, p);
        let value = if k == cash_gifts - 1 {
            remaining - each * (cash_gifts - 1)
        } else {
            each
        };
        items.push((
            p,
            d,
            AidGivenV1 {
                pairing_id: p.id,
                form: AidForm::Cash,
                value_fen: Money(value),
                fund_source: (*b.rng.pick(&sources)).into(),
                item: None,
                quantity: None,
                unit_value_fen: None,
                receipt_ref: String::new(),
            },
        ));
    }
    // One of the cash gifts (they come last) is entered wrongly, then corrected.
    let corrected_index = items.len() - 5;
    for (n, (_, d, mut aid)) in items.into_iter().enumerate() {
        aid.receipt_ref = format!("QY-2023-{:04}", n + 1);
        let occurred = at(d, b.rng.in_range(60, 480));
        if n == corrected_index {
            // Entered with a slip of the finger (ten times the amount), corrected three days later.
            let mut wrong = aid.clone();
            wrong.value_fen = Money(aid.value_fen.fen() * 10);
            let id = b.live(occurred, DomainEvent::AidGiven(wrong));
            let payload = DomainEvent::AidGiven(aid).encode().unwrap_or_default();
            b.live(
                occurred + Duration::days(3),
                DomainEvent::RecordCorrected(RecordCorrectedV1 {
                    target_event_id: id,
                    reason: "金额录入错误，按收据更正".into(),
                    event_type: AidGivenV1::EVENT_TYPE.into(),
                    schema_version: 1,
                    payload,
                }),
            );
        } else {
            b.live(occurred, DomainEvent::AidGiven(aid));
        }
    }
}

/// Pupils, their categories and schools; aid payments, placements, plans, dropouts.
fn build_pupils(b: &mut Builder, org: &Org) -> u32 {
    let mut count = 0u32;
    // (category, how many in school at the year's end)
    let groups: [(Category, u32); 4] = [
        (Category::Orphan, 808),
        (Category::SingleParent, 19_523),
        (Category::LeftBehind, 45_132),
        (Category::DisabledChild, 2_478),
    ];
    let mut orphans = Vec::new();
    let mut disabled = Vec::new();
    let mut unsupported = Vec::new();
    for (category, n) in groups {
        for i in 0..n {
            let school_index = b.rng.below(org.schools.len() as u64) as usize;
            // The last 18 orphans live in the city welfare home.
            let home = (category == Category::Orphan && i >= 790).then_some(org.welfare_home);
            let (pupil, certified, _) = enroll(b, org, school_index, category, home);
            count += 1;
            match category {
                Category::Orphan => orphans.push((pupil, school_index)),
                Category::DisabledChild => disabled.push((pupil, school_index, certified)),
                _ => {}
            }
        }
    }
    // Left-behind children whose parents came home: the category ended, the pupil stays.
    for _ in 0..40 {
        let school_index = b.rng.below(org.schools.len() as u64) as usize;
        let (pupil, _, _) = enroll(b, org, school_index, Category::LeftBehind, None);
        let on = day_between(&mut b.rng, day(2023, 3, 1), day(2023, 11, 30));
        b.live(
            at(on, 60),
            DomainEvent::CategoryEnded(CategoryEndedV1 {
                recipient_id: pupil,
                category: Category::LeftBehind,
                on: Date(on),
                reason: "父母返乡".into(),
            }),
        );
        count += 1;
    }
    // Children with no one de facto to raise them (事实无人抚养儿童).
    for _ in 0..1_300 {
        let school_index = b.rng.below(org.schools.len() as u64) as usize;
        unsupported.push((
            enroll(b, org, school_index, Category::Unsupported, None).0,
            school_index,
        ));
        count += 1;
    }
    // Disabled pupils who finished school in July 2023 (paid for the spring term only).
    let mut graduated = Vec::new();
    for _ in 0..362 {
        let school_index = b.rng.below(org.schools.len() as u64) as usize;
        let (pupil, _, _) = enroll(b, org, school_index, Category::DisabledChild, None);
        b.live(
            at(day(2023, 7, 10), 60),
            DomainEvent::PupilLeft(PupilLeftV1 {
                pupil_id: pupil,
                on: Date(day(2023, 7, 10)),
                reason: LeavingReason::Graduated,
                dropout_cause: None,
                note: "初中毕业".into(),
            }),
        );
        graduated.push(pupil);
        count += 1;
    }
    // Dropouts of recent years, none for poverty.
    for k in 0..12 {
        let school_index = b.rng.below(org.schools.len() as u64) as usize;
        let (pupil, _, enrolled) = enroll(b, org, school_index, Category::SingleParent, None);
        let on = day(2020 + (k % 4), 4 + (k % 6) as u32, 10).max(enrolled + Duration::days(200));
        let cause = [
            DropoutCause::Illness,
            DropoutCause::FamilyMigration,
            DropoutCause::Disability,
        ][k as usize % 3];
        let event = DomainEvent::PupilLeft(PupilLeftV1 {
            pupil_id: pupil,
            on: Date(on),
            reason: LeavingReason::DroppedOut,
            dropout_cause: Some(cause),
            note: "已跟踪劝返".into(),
        });
        if on < day(2023, 3, 1) {
            b.backfill(at(on, 60), event);
        } else {
            b.live(at(on, 60), event);
        }
        count += 1;
    }

    build_student_aid(b, &orphans, &unsupported, &disabled, &graduated);
    build_placements(b, org, &disabled);
    build_plans(b, org, &orphans, &unsupported);
    count
}

/// Registers a pupil (backfill): the person, their category, their enrollment. Returns the pupil
/// the day the category holds from, and the day of enrollment.
fn enroll(
    b: &mut Builder,
    org: &Org,
    school_index: usize,
    category: Category,
    unit: Option<Uuid>,
) -> (Uuid, NaiveDate, NaiveDate) {
    let pupil = b.entity();
    let school = org.schools[school_index];
    let birth_year = 2008 + b.rng.in_range(0, 9) as i32;
    let birth = day(
        birth_year,
        1 + b.rng.below(12) as u32,
        1 + b.rng.below(28) as u32,
    );
    let enrolled = day(birth_year + 7, 9, 1).min(day(2022, 9, 1));
    let n = name(&mut b.rng);
    let home = unit.unwrap_or(org.townships[school_index / 5]);
    b.backfill(
        at(enrolled, 0),
        DomainEvent::RecipientRegistered(RecipientRegisteredV1 {
            recipient_id: pupil,
            kind: RecipientKind::Person,
            name: n,
            unit_id: home,
            birth_date: Some(Date(birth)),
        }),
    );
    let certified = day_between(&mut b.rng, day(2019, 1, 1), day(2022, 8, 31));
    let certifier = match category {
        Category::DisabledChild => "县残疾人联合会",
        Category::Orphan | Category::Unsupported => "县民政局",
        _ => "学校摸排、乡镇核实",
    };
    b.backfill(
        at(certified.min(enrolled), 0),
        DomainEvent::CategoryCertified(CategoryCertifiedV1 {
            recipient_id: pupil,
            category,
            certified_by: certifier.into(),
            from: Date(certified.min(enrolled)),
            to: None,
        }),
    );
    b.backfill(
        at(enrolled, 0),
        DomainEvent::PupilEnrolled(PupilEnrolledV1 {
            pupil_id: pupil,
            school_id: school,
            on: Date(enrolled),
        }),
    );
    (pupil, certified.min(enrolled), enrolled)
}

/// 7,714 payments to enrolled pupils of the right category, totalling exactly 4,118,200 元.
fn build_student_aid(
    b: &mut Builder,
    orphans: &[(Uuid, usize)],
    unsupported: &[(Uuid, usize)],
    disabled: &[(Uuid, usize, NaiveDate)],
    graduated: &[Uuid],
) {
    const TOTAL_YUAN: i64 = 4_118_200;
    let mut payments: Vec<(Uuid, AidProgramme, &str, i64)> = Vec::new();
    // Orphans: 532 person-times (266 pupils, both terms).
    for (pupil, _) in orphans.iter().take(266) {
        payments.push((*pupil, AidProgramme::ForOrphans, "2023-spring", 600));
        payments.push((*pupil, AidProgramme::ForOrphans, "2023-autumn", 600));
    }
    // Unsupported: 1,864 (564 both terms, 736 the autumn term only).
    for (k, (pupil, _)) in unsupported.iter().enumerate() {
        if k < 564 {
            payments.push((*pupil, AidProgramme::ForUnsupported, "2023-spring", 500));
        }
        payments.push((*pupil, AidProgramme::ForUnsupported, "2023-autumn", 500));
    }
    // Disabled: 5,318 (2,478 in school both terms, 362 graduates the spring term).
    for (pupil, _, _) in disabled {
        payments.push((*pupil, AidProgramme::ForDisabled, "2023-spring", 550));
        payments.push((*pupil, AidProgramme::ForDisabled, "2023-autumn", 550));
    }
    for pupil in graduated {
        payments.push((*pupil, AidProgramme::ForDisabled, "2023-spring", 550));
    }
    // Spread the difference to the exact total over the payments, in whole yuan.
    let sum: i64 = payments.iter().map(|p| p.3).sum();
    let n = payments.len() as i64;
    let delta = TOTAL_YUAN - sum;
    let (per, rest) = (delta.div_euclid(n), delta.rem_euclid(n));
    for (k, p) in payments.iter_mut().enumerate() {
        p.3 += per + i64::from((k as i64) < rest);
    }
    for (pupil, programme, term, yuan) in payments {
        let d = if term.ends_with("spring") {
            day_between(&mut b.rng, day(2023, 4, 10), day(2023, 5, 31))
        } else {
            day_between(&mut b.rng, day(2023, 10, 9), day(2023, 11, 30))
        };
        let minutes = b.rng.in_range(60, 480);
        b.live(
            at(d, minutes),
            DomainEvent::StudentAidPaid(StudentAidPaidV1 {
                pupil_id: pupil,
                programme,
                term: term.into(),
                amount_fen: Money(yuan * 100),
            }),
        );
    }
}

/// 484 placements decided 2020–2023: 326 ordinary class, 33 special school, 125 at home, counted
/// by mode at the end of 2023 (a few changed mode on the way).
fn build_placements(b: &mut Builder, org: &Org, disabled: &[(Uuid, usize, NaiveDate)]) {
    for (k, (pupil, school_index, certified)) in disabled.iter().take(484).enumerate() {
        // Decided once the child was certified; 2023's decisions from March on.
        let decided = day(
            2020 + (k % 4) as i32,
            3 + (k % 6) as u32,
            1 + (k % 27) as u32,
        )
        .max(*certified + Duration::days(20));
        let decided = if decided >= day(2023, 1, 1) && decided < day(2023, 3, 1) {
            day(2023, 3, 1)
        } else {
            decided
        };
        let (final_mode, school) = match k {
            0..326 => (PlacementMode::RegularClass, org.schools[*school_index]),
            326..359 => (
                PlacementMode::SpecialSchool,
                org.special_schools[k % org.special_schools.len()],
            ),
            _ => (PlacementMode::HomeTeaching, org.schools[*school_index]),
        };
        // Eight children first taught at home moved to an ordinary class later.
        let first_mode = if k < 8 {
            PlacementMode::HomeTeaching
        } else {
            final_mode
        };
        let placement = b.id(at(decided, 0).timestamp_millis());
        let event = DomainEvent::PlacementDecided(PlacementDecidedV1 {
            placement_id: placement,
            pupil_id: *pupil,
            mode: first_mode,
            school_id: school,
            on: Date(decided),
        });
        if decided < day(2023, 3, 1) {
            b.backfill(at(decided, 0), event);
        } else {
            b.live(at(decided, 0), event);
        }
        if first_mode != final_mode {
            let on = day(2023, 9, 1);
            b.live(
                at(on, 30 + k as i64),
                DomainEvent::PlacementChanged(PlacementChangedV1 {
                    placement_id: placement,
                    mode: final_mode,
                    school_id: school,
                    on: Date(on),
                }),
            );
        }
    }
}

/// The welfare home's 18 orphans at 6 schools with one-pupil-one-plans; 2,046 one-to-one plans.
fn build_plans(
    b: &mut Builder,
    org: &Org,
    orphans: &[(Uuid, usize)],
    unsupported: &[(Uuid, usize)],
) {
    // The welfare home's 18 orphans (the last 18 of the 808) attend 6 schools, three each.
    let schools: Vec<usize> = (0..6).map(|k| k * 19).collect();
    for (k, (pupil, school_index)) in orphans.iter().skip(790).enumerate() {
        let target = schools[k % 6];
        if *school_index != target {
            let on = day(2023, 2, 27);
            b.live(
                at(on, k as i64),
                DomainEvent::PupilMoved(PupilMovedV1 {
                    pupil_id: *pupil,
                    school_id: org.schools[target],
                    on: Date(on),
                }),
            );
        }
        let teacher = org.teachers[target][k % 4];
        let opened = day(2023, 3, 15 + (k % 10) as u32);
        let plan = b.id(at(opened, 0).timestamp_millis());
        b.live(
            at(opened, 120),
            DomainEvent::CarePlanOpened(CarePlanOpenedV1 {
                plan_id: plan,
                pupil_id: *pupil,
                teacher_id: teacher,
                scheme: PlanScheme::OnePupilOnePlan,
                goals: "全面提高学业成绩，增强学习生活自信心".into(),
                measures: "每周两次个别辅导；每月家访（福利院）".into(),
                next_review: Date(day(2023, 6, 30)),
            }),
        );
        b.live(
            at(day(2023, 6, 28), 60 + k as i64),
            DomainEvent::CarePlanReviewed(CarePlanReviewedV1 {
                plan_id: plan,
                progress: "学业成绩稳步提升".into(),
                next_review: Date(day(2024, 1, 15)),
            }),
        );
    }
    // One-to-one plans for orphans and unsupported children.
    let candidates: Vec<&(Uuid, usize)> =
        orphans.iter().take(790).chain(unsupported.iter()).collect();
    for (k, (pupil, school_index)) in candidates.into_iter().take(ONE_TO_ONE_PLANS).enumerate() {
        let teacher = org.teachers[*school_index][k % 4];
        let opened = day_between(&mut b.rng, day(2023, 3, 1), day(2023, 11, 30));
        let plan = b.id(at(opened, 0).timestamp_millis());
        b.live(
            at(opened, 180),
            DomainEvent::CarePlanOpened(CarePlanOpenedV1 {
                plan_id: plan,
                pupil_id: *pupil,
                teacher_id: teacher,
                scheme: PlanScheme::OneToOne,
                goals: "补齐学业短板".into(),
                measures: "每周一次1对1辅导，每学期家访一次".into(),
                next_review: Date(opened + Duration::days(90)),
            }),
        );
    }
}

/// The source report's figures, recorded as claims on the day the report was filed.
fn build_claims(b: &mut Builder) {
    let filed = at(day(2023, 12, 29), 540);
    for (metric, value, comparison) in CLAIMED {
        let def = super::report::metric_def(metric);
        let (from, to) = def.map_or((Date(day(2023, 1, 1)), Date(day(2023, 12, 31))), |d| {
            let p = d.period(None);
            (p.from, p.to)
        });
        let claim = b.id(filed.timestamp_millis());
        b.push(
            filed,
            filed + Duration::minutes(10),
            DomainEvent::ClaimFiled(ClaimFiledV1 {
                claim_id: claim,
                metric: (*metric).into(),
                scope_unit_id: None,
                period_from: Some(from),
                period_to: Some(to),
                value: *value,
                comparison: *comparison,
                source_document:
                    "庆阳市教育局《精心谋划 精准施策 奋力推动结对关爱行动走深走实》(2023)".into(),
                reported_on: Date(day(2023, 12, 29)),
            }),
        );
    }
}
