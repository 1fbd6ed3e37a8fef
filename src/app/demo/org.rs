//! The demo's organisation: the city bureau, its welfare home, 8 counties with 3 townships
//! each (Maojing among them) and 5 schools a township, two special schools, four teachers a
//! school; and the names people are given.

use uuid::Uuid;

use crate::app::scenario::{Scenario, day, shanghai_at as at};
use crate::domain::events::*;
use crate::domain::{Date, DomainEvent};
use crate::rng::SplitMix64;

pub(super) const COUNTIES: [(&str, &str); 8] = [
    ("西峰区", "621002"),
    ("庆城县", "621021"),
    ("环县", "621022"),
    ("华池县", "621023"),
    ("合水县", "621024"),
    ("正宁县", "621025"),
    ("宁县", "621026"),
    ("镇原县", "621027"),
];

pub(super) const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
pub(super) const GIVEN: [&str; 12] = [
    "明", "华", "芳", "军", "丽", "强", "静", "磊", "娟", "伟", "霞", "杰",
];

pub(super) fn name(rng: &mut SplitMix64) -> String {
    format!(
        "{}{}{}",
        rng.pick(&SURNAMES),
        rng.pick(&GIVEN),
        rng.pick(&GIVEN)
    )
}

pub(super) struct Org {
    pub(super) city: Uuid,
    pub(super) welfare_home: Uuid,
    /// (county, townships)
    pub(super) townships: Vec<Uuid>,
    pub(super) maojing: Uuid,
    pub(super) schools: Vec<Uuid>,
    pub(super) special_schools: Vec<Uuid>,
    /// teachers by school index
    pub(super) teachers: Vec<Vec<Uuid>>,
}

pub(super) fn build_org(b: &mut Scenario) -> Org {
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
