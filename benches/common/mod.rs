//! What the benches share: a deterministic generator of valid domain events (the programme's
//! registry, pairings, pupils, and a year-on-year stream of what cadres and schools do), a fast
//! way to fill a log with them, and the measuring helpers (directory size, RSS, percentiles,
//! where to put stores).
//!
//! The generator draws its ids as [`carelog::app::scenario`] does, but streams: a bench log of
//! ten million events cannot be planned in memory and sorted, as a `Scenario` is, so events
//! are made in recorded order one at a time. The generator goes straight to [`NewEvent`]s with [`DomainEvent::encode`] payloads: the
//! projections only need decodable domain events, and this builds a million-event log in seconds
//! (the validated `App::append` path is what the demo bench measures).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use chrono::{Duration, FixedOffset, TimeZone};
use uuid::Uuid;

use carelog::app::scenario;
use carelog::domain::events::*;
use carelog::domain::{Date, DomainEvent, Money, stream_of};
use carelog::log::{AppendBatch, Log, NewEvent, OpenOptions};
use carelog::time::Instant;

/// SplitMix64 (`carelog::rng`): the same sequence on every machine.
pub use carelog::rng::SplitMix64 as Rng;

const SUMMARIES: [&str; 6] = [
    "电话联系，了解近况，家中无新困难",
    "视频通话，孩子学习情况良好",
    "信息联系，提醒按时复诊",
    "电话联系，询问冬季取暖情况",
    "了解低保续保材料准备情况",
    "询问医疗报销进度，已告知办理流程",
];
const OBSERVATIONS: [&str; 4] = [
    "入户走访，房屋安全，生活用品齐全",
    "走访时老人身体状况稳定，已送去慰问品",
    "孩子在校表现良好，监护人按时接送",
    "检查用电安全，更换了老化插座",
];
const FUND_SOURCES: [&str; 4] = ["县财政专项", "慈善总会", "单位帮扶资金", "个人捐助"];
const CATEGORIES: [Category; 7] = Category::ALL;
const PROGRAMMES: [AidProgramme; 3] = [
    AidProgramme::ForOrphans,
    AidProgramme::ForUnsupported,
    AidProgramme::ForDisabled,
];
const MODES: [PlacementMode; 3] = [
    PlacementMode::RegularClass,
    PlacementMode::SpecialSchool,
    PlacementMode::HomeTeaching,
];

/// Generates `total` valid domain events, deterministically for a seed: first the org tree and
/// staff, then a mix spread over eight years of occurred time: new pairings and pupils, contacts,
/// visits, follow-ups, difficulties, errands, aid, escalations at every stage, student aid,
/// placements, care plans, transfers, pupils leaving, voids and claims.
pub struct Generator {
    rng: Rng,
    total: u64,
    made: u64,
    start: Instant,
    span_seconds: i64,
    queue: VecDeque<(DomainEvent, String)>,
    townships: Vec<Uuid>,
    schools: Vec<Uuid>,
    cadres: Vec<Uuid>,
    teachers: Vec<Uuid>,
    pairings: Vec<Uuid>,
    pupils: Vec<Uuid>,
    disabled_pupils: Vec<Uuid>,
    placements: Vec<Uuid>,
    plans: Vec<Uuid>,
    open_difficulties: Vec<Uuid>,
    /// (escalation, stage reached: 0 raised, 1 acknowledged, 2 answered)
    open_escalations: Vec<(Uuid, u8)>,
    /// Recent activity event ids, for voids.
    recent_activities: VecDeque<Uuid>,
    last_event_id: Uuid,
}

impl Generator {
    pub fn new(seed: u64, total: u64) -> Self {
        let start = FixedOffset::east_opt(8 * 3600)
            .and_then(|o| o.with_ymd_and_hms(2016, 1, 4, 8, 0, 0).single())
            .expect("a valid start");
        let mut g = Self {
            rng: Rng(seed),
            total: total.max(1),
            made: 0,
            start,
            span_seconds: 8 * 365 * 86_400,
            queue: VecDeque::new(),
            townships: Vec::new(),
            schools: Vec::new(),
            cadres: Vec::new(),
            teachers: Vec::new(),
            pairings: Vec::new(),
            pupils: Vec::new(),
            disabled_pupils: Vec::new(),
            placements: Vec::new(),
            plans: Vec::new(),
            open_difficulties: Vec::new(),
            open_escalations: Vec::new(),
            recent_activities: VecDeque::new(),
            last_event_id: Uuid::nil(),
        };
        g.setup();
        g
    }

    /// A fresh id stamped with the current time, drawn as the library's scenarios draw theirs.
    fn id(&mut self) -> Uuid {
        let ms = self.now().timestamp_millis();
        scenario::seeded_uuid(&mut self.rng, ms)
    }

    /// When the next event happened: spread evenly over the span.
    fn now(&self) -> Instant {
        let offset = (self.made as i128 * self.span_seconds as i128 / self.total as i128) as i64;
        self.start + Duration::seconds(offset)
    }

    fn today(&self) -> Date {
        Date(self.now().date_naive())
    }

    fn push(&mut self, event: DomainEvent, by: &str) {
        self.queue.push_back((event, by.to_string()));
    }

    fn setup(&mut self) {
        let bureau = self.id();
        self.push(
            DomainEvent::UnitRegistered(UnitRegisteredV1 {
                unit_id: bureau,
                name: "青阳市教育局".into(),
                kind: UnitKind::CityBureau,
                parent_id: None,
                official_code: Some("341723".into()),
            }),
            "admin",
        );
        for c in 0..8 {
            let county = self.id();
            self.push(
                DomainEvent::UnitRegistered(UnitRegisteredV1 {
                    unit_id: county,
                    name: format!("第{c}县"),
                    kind: UnitKind::County,
                    parent_id: Some(bureau),
                    official_code: None,
                }),
                "admin",
            );
            for t in 0..3 {
                let township = self.id();
                self.townships.push(township);
                self.push(
                    DomainEvent::UnitRegistered(UnitRegisteredV1 {
                        unit_id: township,
                        name: format!("第{c}县第{t}镇"),
                        kind: UnitKind::Township,
                        parent_id: Some(county),
                        official_code: None,
                    }),
                    "admin",
                );
                for s in 0..5 {
                    let school = self.id();
                    self.schools.push(school);
                    self.push(
                        DomainEvent::UnitRegistered(UnitRegisteredV1 {
                            unit_id: school,
                            name: format!("第{c}县第{t}镇第{s}小学"),
                            kind: UnitKind::School,
                            parent_id: Some(township),
                            official_code: None,
                        }),
                        "admin",
                    );
                }
            }
        }
        let cadres = (self.total / 400).clamp(40, 20_000);
        let teachers = (self.total / 2_000).clamp(20, 5_000);
        let since = self.today();
        for i in 0..cadres + teachers {
            let person = self.id();
            let (role, unit) = if i < cadres {
                self.cadres.push(person);
                (StaffRole::Cadre, *self.rng.pick(&self.townships))
            } else {
                self.teachers.push(person);
                (StaffRole::Teacher, *self.rng.pick(&self.schools))
            };
            self.push(
                DomainEvent::StaffRegistered(StaffRegisteredV1 {
                    person_id: person,
                    name: format!("干部{i}"),
                    role,
                    unit_id: unit,
                    since,
                }),
                "admin",
            );
        }
        // Enough pairings and pupils from the start that the first activities have targets.
        for _ in 0..(cadres * 2) {
            self.new_pairing();
        }
        for _ in 0..(teachers * 4) {
            self.new_pupil();
        }
    }

    fn new_pairing(&mut self) {
        let recipient = self.id();
        let pairing = self.id();
        let cadre = *self.rng.pick(&self.cadres);
        let township = *self.rng.pick(&self.townships);
        let household = self.rng.below(4) == 0;
        let today = self.today();
        self.push(
            DomainEvent::RecipientRegistered(RecipientRegisteredV1 {
                recipient_id: recipient,
                kind: if household {
                    RecipientKind::Household
                } else {
                    RecipientKind::Person
                },
                name: format!("受助人{}", self.pairings.len()),
                unit_id: township,
                birth_date: (!household).then(|| Date::ymd(1950, 3, 1)).flatten(),
            }),
            "admin",
        );
        let category = if household {
            Category::ExtremelyPoor
        } else {
            *self.rng.pick(&[
                Category::Orphan,
                Category::SeverelyDisabled,
                Category::Unsupported,
                Category::LeftBehind,
            ])
        };
        self.push(
            DomainEvent::CategoryCertified(CategoryCertifiedV1 {
                recipient_id: recipient,
                category,
                certified_by: "县民政局".into(),
                from: today,
                to: None,
            }),
            "admin",
        );
        self.push(
            DomainEvent::PairingEstablished(PairingEstablishedV1 {
                pairing_id: pairing,
                cadre_id: cadre,
                recipient_id: recipient,
                on: today,
            }),
            "admin",
        );
        self.pairings.push(pairing);
    }

    fn new_pupil(&mut self) {
        let pupil = self.id();
        let school = *self.rng.pick(&self.schools);
        let today = self.today();
        self.push(
            DomainEvent::RecipientRegistered(RecipientRegisteredV1 {
                recipient_id: pupil,
                kind: RecipientKind::Person,
                name: format!("学生{}", self.pupils.len()),
                unit_id: school,
                birth_date: Date::ymd(2012, 9, 1),
            }),
            "school",
        );
        self.push(
            DomainEvent::PupilEnrolled(PupilEnrolledV1 {
                pupil_id: pupil,
                school_id: school,
                on: today,
            }),
            "school",
        );
        if self.rng.below(3) == 0 {
            let category = *self.rng.pick(&CATEGORIES[..]);
            let category = if category.is_for_household() {
                Category::LeftBehind
            } else {
                category
            };
            if category == Category::DisabledChild {
                self.disabled_pupils.push(pupil);
            }
            self.push(
                DomainEvent::CategoryCertified(CategoryCertifiedV1 {
                    recipient_id: pupil,
                    category,
                    certified_by: "县教育局".into(),
                    from: today,
                    to: None,
                }),
                "school",
            );
        }
        self.pupils.push(pupil);
    }

    /// One event of the steady mix (some kinds queue several).
    fn steady(&mut self) {
        let pairing = *self.rng.pick(&self.pairings);
        let cadre = "cadre";
        let roll = self.rng.below(1000);
        let event = match roll {
            0..=279 => DomainEvent::ContactRecorded(ContactRecordedV2 {
                pairing_id: pairing,
                channel: *self
                    .rng
                    .pick(&[Channel::Phone, Channel::Video, Channel::Message]),
                summary: (*self.rng.pick(&SUMMARIES)).into(),
                duration_minutes: Some(5 + self.rng.below(40) as u32),
            }),
            280..=379 => {
                let group = self.rng.below(5) == 0;
                DomainEvent::VisitRecorded(VisitRecordedV1 {
                    pairing_id: pairing,
                    trip: if group {
                        TripKind::Group
                    } else {
                        TripKind::Own
                    },
                    group_trip_id: group.then(|| self.id()),
                    companions: if group {
                        vec![*self.rng.pick(&self.cadres)]
                    } else {
                        Vec::new()
                    },
                    observations: (*self.rng.pick(&OBSERVATIONS)).into(),
                })
            }
            380..=419 => DomainEvent::PolicyFollowupRecorded(PolicyFollowupRecordedV1 {
                pairing_id: pairing,
                policy: "城乡低保".into(),
                agency: "乡镇民政办".into(),
                outcome: "已按月足额发放".into(),
            }),
            420..=459 => {
                let difficulty = self.id();
                self.open_difficulties.push(difficulty);
                DomainEvent::DifficultyRaised(DifficultyRaisedV1 {
                    difficulty_id: difficulty,
                    pairing_id: pairing,
                    description: "房屋漏雨需要修缮".into(),
                })
            }
            460..=494 if !self.open_difficulties.is_empty() => {
                let i = self.rng.below(self.open_difficulties.len() as u64) as usize;
                let difficulty = self.open_difficulties.swap_remove(i);
                if roll < 490 {
                    DomainEvent::DifficultyResolved(DifficultyResolvedV1 {
                        difficulty_id: difficulty,
                        how: "协调村委会完成修缮".into(),
                    })
                } else {
                    DomainEvent::DifficultyDropped(DifficultyDroppedV1 {
                        difficulty_id: difficulty,
                        reason: "家属已自行解决".into(),
                    })
                }
            }
            495..=544 => DomainEvent::ErrandDone(ErrandDoneV1 {
                pairing_id: pairing,
                description: "代办医保报销".into(),
                result: "已报销".into(),
            }),
            545..=604 => {
                if self.rng.below(2) == 0 {
                    let amount = Money(10_000 * (1 + self.rng.below(10) as i64));
                    DomainEvent::AidGiven(AidGivenV1 {
                        pairing_id: pairing,
                        form: AidForm::Cash,
                        value_fen: amount,
                        fund_source: (*self.rng.pick(&FUND_SOURCES)).into(),
                        item: None,
                        quantity: None,
                        unit_value_fen: None,
                        receipt_ref: format!("R{}", self.made),
                    })
                } else {
                    let quantity = 1 + self.rng.below(5) as u32;
                    let unit = Money(2_500 * (1 + self.rng.below(8) as i64));
                    DomainEvent::AidGiven(AidGivenV1 {
                        pairing_id: pairing,
                        form: AidForm::Goods,
                        value_fen: Money(unit.fen() * i64::from(quantity)),
                        fund_source: (*self.rng.pick(&FUND_SOURCES)).into(),
                        item: Some("大米".into()),
                        quantity: Some(quantity),
                        unit_value_fen: Some(unit),
                        receipt_ref: format!("G{}", self.made),
                    })
                }
            }
            605..=624 => {
                let escalation = self.id();
                self.open_escalations.push((escalation, 0));
                DomainEvent::EscalationRaised(EscalationRaisedV1 {
                    escalation_id: escalation,
                    pairing_id: pairing,
                    to_level: "县民政局".into(),
                    issue: "残疾人两项补贴未到账".into(),
                })
            }
            625..=669 if !self.open_escalations.is_empty() => {
                let i = self.rng.below(self.open_escalations.len() as u64) as usize;
                let (escalation, stage) = self.open_escalations[i];
                match stage {
                    0 => {
                        self.open_escalations[i].1 = 1;
                        DomainEvent::EscalationAcknowledged(EscalationAcknowledgedV1 {
                            escalation_id: escalation,
                            by: "县民政局社会救助股".into(),
                        })
                    }
                    1 => {
                        self.open_escalations[i].1 = 2;
                        DomainEvent::EscalationAnswered(EscalationAnsweredV1 {
                            escalation_id: escalation,
                            answer: "已核实，下月补发".into(),
                        })
                    }
                    _ => {
                        self.open_escalations.swap_remove(i);
                        DomainEvent::EscalationClosed(EscalationClosedV1 {
                            escalation_id: escalation,
                            outcome: "补贴已补发".into(),
                        })
                    }
                }
            }
            670..=679 => {
                self.new_pairing();
                return;
            }
            680..=684 => DomainEvent::PairingTransferred(PairingTransferredV1 {
                pairing_id: pairing,
                to_cadre_id: *self.rng.pick(&self.cadres),
                on: self.today(),
                reason: "工作调动".into(),
            }),
            685..=749 => {
                self.new_pupil();
                return;
            }
            750..=869 => {
                let pupil = *self.rng.pick(&self.pupils);
                let year = self.now().format("%Y").to_string();
                let half = if self.rng.below(2) == 0 {
                    "spring"
                } else {
                    "autumn"
                };
                DomainEvent::StudentAidPaid(StudentAidPaidV1 {
                    pupil_id: pupil,
                    programme: *self.rng.pick(&PROGRAMMES),
                    term: format!("{year}-{half}"),
                    amount_fen: Money(62_500),
                })
            }
            870..=889 => {
                let pupil = if self.disabled_pupils.is_empty() {
                    *self.rng.pick(&self.pupils)
                } else {
                    *self.rng.pick(&self.disabled_pupils)
                };
                let placement = self.id();
                self.placements.push(placement);
                DomainEvent::PlacementDecided(PlacementDecidedV1 {
                    placement_id: placement,
                    pupil_id: pupil,
                    mode: *self.rng.pick(&MODES),
                    school_id: *self.rng.pick(&self.schools),
                    on: self.today(),
                })
            }
            890..=894 if !self.placements.is_empty() => {
                DomainEvent::PlacementChanged(PlacementChangedV1 {
                    placement_id: *self.rng.pick(&self.placements),
                    mode: *self.rng.pick(&MODES),
                    school_id: *self.rng.pick(&self.schools),
                    on: self.today(),
                })
            }
            895..=914 => {
                let plan = self.id();
                self.plans.push(plan);
                let next = Date(self.today().0 + Duration::days(90));
                DomainEvent::CarePlanOpened(CarePlanOpenedV1 {
                    plan_id: plan,
                    pupil_id: *self.rng.pick(&self.pupils),
                    teacher_id: *self.rng.pick(&self.teachers),
                    scheme: if self.rng.below(2) == 0 {
                        PlanScheme::OneToOne
                    } else {
                        PlanScheme::OnePupilOnePlan
                    },
                    goals: "提高生活自理能力".into(),
                    measures: "每周两次个别辅导".into(),
                    next_review: next,
                })
            }
            915..=944 if !self.plans.is_empty() => {
                let next = Date(self.today().0 + Duration::days(90));
                DomainEvent::CarePlanReviewed(CarePlanReviewedV1 {
                    plan_id: *self.rng.pick(&self.plans),
                    progress: "按计划推进".into(),
                    next_review: next,
                })
            }
            945..=949 => {
                let i = self.rng.below(self.pupils.len() as u64) as usize;
                let pupil = self.pupils[i];
                if self.pupils.len() > 100 {
                    self.pupils.swap_remove(i);
                }
                DomainEvent::PupilLeft(PupilLeftV1 {
                    pupil_id: pupil,
                    on: self.today(),
                    reason: LeavingReason::Graduated,
                    dropout_cause: None,
                    note: String::new(),
                })
            }
            950..=952 if !self.recent_activities.is_empty() => {
                let i = self.rng.below(self.recent_activities.len() as u64) as usize;
                let target = self.recent_activities.remove(i).unwrap_or_default();
                DomainEvent::RecordVoided(RecordVoidedV1 {
                    target_event_id: target,
                    reason: "重复录入".into(),
                })
            }
            953 => DomainEvent::ClaimFiled(ClaimFiledV1 {
                claim_id: self.id(),
                metric: "home_visits".into(),
                scope_unit_id: None,
                period_from: None,
                period_to: None,
                value: self.made as i64 / 10,
                comparison: Comparison::AtLeast,
                source_document: "年度工作总结".into(),
                reported_on: self.today(),
            }),
            _ => DomainEvent::ContactRecorded(ContactRecordedV2 {
                pairing_id: pairing,
                channel: Channel::Phone,
                summary: (*self.rng.pick(&SUMMARIES)).into(),
                duration_minutes: None,
            }),
        };
        self.push(event, cadre);
    }

    /// The next event.
    pub fn next_event(&mut self) -> NewEvent {
        while self.queue.is_empty() {
            self.steady();
        }
        let Some((event, by)) = self.queue.pop_front() else {
            unreachable!("the queue was just filled")
        };
        let occurred_at = self.now();
        let event_id = self.id();
        if matches!(
            event,
            DomainEvent::ContactRecorded(_)
                | DomainEvent::VisitRecorded(_)
                | DomainEvent::AidGiven(_)
                | DomainEvent::ErrandDone(_)
        ) {
            self.recent_activities.push_back(event_id);
            if self.recent_activities.len() > 1_000 {
                self.recent_activities.pop_front();
            }
        }
        self.made += 1;
        self.last_event_id = event_id;
        NewEvent {
            event_id,
            stream: stream_of(&event),
            event_type: event.event_type().to_string(),
            schema_version: event.schema_version(),
            occurred_at,
            recorded_by: by,
            correlation_id: None,
            causation_id: None,
            payload: event.encode().expect("domain events encode"),
            recorded_at: None,
        }
    }

    /// The next `n` events.
    pub fn batch(&mut self, n: usize) -> Vec<NewEvent> {
        (0..n).map(|_| self.next_event()).collect()
    }
}

/// Events per append batch when filling a log for reading benches.
pub const FILL_BATCH_EVENTS: usize = 8_192;

/// Appends `n` generated events to `log` in big batches, a few in flight at once.
pub fn fill_log(log: &Log, generator: &mut Generator, n: u64) {
    let mut pending = VecDeque::new();
    let mut left = n;
    while left > 0 {
        let size = left.min(FILL_BATCH_EVENTS as u64) as usize;
        left -= size as u64;
        pending.push_back(
            log.submit(AppendBatch::new(generator.batch(size)))
                .expect("submit"),
        );
        if pending.len() >= 4
            && let Some(p) = pending.pop_front()
        {
            p.wait().expect("append");
        }
    }
    for p in pending {
        p.wait().expect("append");
    }
}

/// Opens (creating) a log at `dir` with the default options.
pub fn open_log(dir: &Path) -> Log {
    Log::open(dir, OpenOptions::default()).expect("open log")
}

/// Where benches keep their stores: on a real disk (fsync must cost what it costs), never
/// tmpfs. `CARELOG_BENCH_DIR` overrides; the default is cargo's target tmp dir under /work.
pub fn bench_root() -> PathBuf {
    let root = std::env::var_os("CARELOG_BENCH_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/work"));
    std::fs::create_dir_all(&root).expect("bench dir");
    if fs_type(&root).as_deref() == Some("tmpfs") {
        eprintln!(
            "warning: {} is on tmpfs, where fsync costs nothing: set CARELOG_BENCH_DIR to a real disk",
            root.display()
        );
    }
    root
}

/// A fresh temporary directory under [`bench_root`].
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("carelog-bench-")
        .tempdir_in(bench_root())
        .expect("tempdir")
}

/// The file system type of the mount holding `path` (from /proc/mounts).
pub fn fs_type(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next()?;
            let mount = f.next()?;
            let kind = f.next()?;
            Some((PathBuf::from(mount), kind.to_string()))
        })
        .filter(|(m, _)| path.starts_with(m))
        .max_by_key(|(m, _)| m.as_os_str().len())
        .map(|(_, k)| k)
}

/// Bytes of the files under `dir`, skipping the subdirectories named in `skip`.
pub fn dir_size(dir: &Path, skip: &[&str]) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if skip.iter().any(|s| entry.file_name() == *s) {
                continue;
            }
            total += dir_size(&entry.path(), skip);
        } else {
            total += meta.len();
        }
    }
    total
}

/// A field of /proc/self/status in KiB (VmHWM: peak resident; VmRSS: resident now).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The p-th percentile (0..=100) of samples, nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
