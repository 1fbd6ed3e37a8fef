//! The demo's pupils: ~70,000 with dated categories and schools, moves and dropouts; student
//! aid payments, placements of the disabled children, and care plans.

use chrono::{Duration, NaiveDate};
use uuid::Uuid;

use super::ONE_TO_ONE_PLANS;
use super::day_between;
use super::org::{Org, name};
use crate::app::scenario::{Scenario, day, shanghai_at as at};
use crate::domain::events::*;
use crate::domain::{Date, DomainEvent, Money};

/// Pupils, their categories and schools; aid payments, placements, plans, dropouts.
pub(super) fn build_pupils(b: &mut Scenario, org: &Org) -> u32 {
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
pub(super) fn enroll(
    b: &mut Scenario,
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
pub(super) fn build_student_aid(
    b: &mut Scenario,
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
pub(super) fn build_placements(b: &mut Scenario, org: &Org, disabled: &[(Uuid, usize, NaiveDate)]) {
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
        let placement = b.id_at(at(decided, 0).timestamp_millis());
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
pub(super) fn build_plans(
    b: &mut Scenario,
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
        let plan = b.id_at(at(opened, 0).timestamp_millis());
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
        let plan = b.id_at(at(opened, 0).timestamp_millis());
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
