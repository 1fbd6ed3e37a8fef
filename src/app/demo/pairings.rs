//! The demo's pairings and what is done in them: 40 cadres, 53 pairings (three handed over
//! mid-year, one suspended, ...), a year of contacts, visits (group trips to Maojing township
//! among them), follow-ups, errands, difficulties, escalations, and aid in cash and goods.

use chrono::{Duration, NaiveDate};
use uuid::Uuid;

use super::day_between;
use super::org::{Org, SURNAMES, name};
use crate::app::scenario::{Scenario, day, shanghai_at as at};
use crate::codec::PayloadType;
use crate::domain::events::*;
use crate::domain::{Date, DomainEvent, Money};
use crate::rng::SplitMix64;

pub(super) struct PairingPlan {
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

pub(super) fn build_pairings(b: &mut Scenario, org: &Org) -> u32 {
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
pub(super) fn activity_day(rng: &mut SplitMix64, p: &PairingPlan) -> NaiveDate {
    loop {
        let d = day_between(rng, p.established + Duration::days(1), day(2023, 12, 20));
        if p.active(d) {
            return d;
        }
    }
}

pub(super) fn build_activities(b: &mut Scenario, plans: &[PairingPlan]) {
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
        let trip_id = b.id_at(at(d, 0).timestamp_millis());
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
        let diff = b.id_at(at(d, 0).timestamp_millis());
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
        let esc = b.id_at(at(d, 0).timestamp_millis());
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
pub(super) fn build_aid(b: &mut Scenario, plans: &[PairingPlan]) {
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
