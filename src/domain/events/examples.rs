//! The documented example of every payload type ([`Example`]): shown by `carelog events`, used
//! by the golden fixtures (`tests/fixtures/`), so each value here is pinned: changing one changes
//! a fixture.

use uuid::Uuid;

use super::*;
use crate::domain::Date;

/// A fixed UUID for examples and fixtures (UUIDv7 layout).
fn ex(n: u8) -> Uuid {
    Uuid::from_bytes([
        0x01, 0x8b, 0xd2, 0x00, 0x00, 0x00, 0x70, 0x00, 0x80, 0x00, 0, 0, 0, 0, 0, n,
    ])
}

fn ex_date() -> Date {
    Date::ymd(2023, 5, 8).unwrap_or(Date(chrono::NaiveDate::MIN))
}

macro_rules! example {
    ($ty:ty, $value:expr) => {
        impl Example for $ty {
            fn example() -> Self {
                $value
            }
        }
    };
}

example!(
    UnitRegisteredV1,
    UnitRegisteredV1 {
        unit_id: ex(1),
        name: "环县毛井乡".into(),
        kind: UnitKind::Township,
        parent_id: Some(ex(2)),
        official_code: Some("621022206".into())
    }
);
example!(
    StaffRegisteredV1,
    StaffRegisteredV1 {
        person_id: ex(3),
        name: "张明".into(),
        role: StaffRole::Cadre,
        unit_id: ex(2),
        since: ex_date()
    }
);
example!(
    StaffMovedV1,
    StaffMovedV1 {
        person_id: ex(3),
        unit_id: ex(1),
        on: ex_date()
    }
);
example!(
    StaffLeftV1,
    StaffLeftV1 {
        person_id: ex(3),
        on: ex_date(),
        reason: "retired".into()
    }
);
example!(
    RecipientRegisteredV1,
    RecipientRegisteredV1 {
        recipient_id: ex(4),
        kind: RecipientKind::Person,
        name: "李华".into(),
        unit_id: ex(1),
        birth_date: Date::ymd(2012, 3, 1)
    }
);
example!(
    CategoryCertifiedV1,
    CategoryCertifiedV1 {
        recipient_id: ex(4),
        category: Category::Orphan,
        certified_by: "环县民政局".into(),
        from: ex_date(),
        to: None
    }
);
example!(
    CategoryEndedV1,
    CategoryEndedV1 {
        recipient_id: ex(4),
        category: Category::Orphan,
        on: ex_date(),
        reason: "came of age".into()
    }
);
example!(
    HouseholdMemberAddedV1,
    HouseholdMemberAddedV1 {
        household_id: ex(5),
        member_id: ex(6),
        name: "王芳".into(),
        relation: "daughter".into(),
        from: ex_date()
    }
);
example!(
    HouseholdMemberRemovedV1,
    HouseholdMemberRemovedV1 {
        household_id: ex(5),
        member_id: ex(6),
        on: ex_date(),
        reason: "married out".into()
    }
);
example!(
    PupilEnrolledV1,
    PupilEnrolledV1 {
        pupil_id: ex(4),
        school_id: ex(7),
        on: ex_date()
    }
);
example!(
    PupilMovedV1,
    PupilMovedV1 {
        pupil_id: ex(4),
        school_id: ex(8),
        on: ex_date()
    }
);
example!(
    PupilLeftV1,
    PupilLeftV1 {
        pupil_id: ex(4),
        on: ex_date(),
        reason: LeavingReason::DroppedOut,
        dropout_cause: Some(DropoutCause::Illness),
        note: "long illness".into()
    }
);
example!(
    PairingEstablishedV1,
    PairingEstablishedV1 {
        pairing_id: ex(9),
        cadre_id: ex(3),
        recipient_id: ex(4),
        on: ex_date()
    }
);
example!(
    PairingTransferredV1,
    PairingTransferredV1 {
        pairing_id: ex(9),
        to_cadre_id: ex(10),
        on: ex_date(),
        reason: "cadre moved".into()
    }
);
example!(
    PairingSuspendedV1,
    PairingSuspendedV1 {
        pairing_id: ex(9),
        on: ex_date(),
        reason: "in hospital".into()
    }
);
example!(
    PairingResumedV1,
    PairingResumedV1 {
        pairing_id: ex(9),
        on: ex_date()
    }
);
example!(
    PairingEndedV1,
    PairingEndedV1 {
        pairing_id: ex(9),
        on: ex_date(),
        reason: "moved out of the city".into()
    }
);
example!(
    ContactRecordedV1,
    ContactRecordedV1 {
        pairing_id: ex(9),
        channel: Channel::Phone,
        summary: "asked about school fees".into()
    }
);
example!(
    ContactRecordedV2,
    ContactRecordedV2 {
        pairing_id: ex(9),
        channel: Channel::Video,
        summary: "checked on health".into(),
        duration_minutes: Some(15)
    }
);
example!(
    VisitRecordedV1,
    VisitRecordedV1 {
        pairing_id: ex(9),
        trip: TripKind::Group,
        group_trip_id: Some(ex(11)),
        companions: vec![ex(10)],
        observations: "roof leaks".into()
    }
);
example!(
    PolicyFollowupRecordedV1,
    PolicyFollowupRecordedV1 {
        pairing_id: ex(9),
        policy: "最低生活保障".into(),
        agency: "县民政局".into(),
        outcome: "approved".into()
    }
);
example!(
    DifficultyRaisedV1,
    DifficultyRaisedV1 {
        difficulty_id: ex(12),
        pairing_id: ex(9),
        description: "no winter coal".into()
    }
);
example!(
    DifficultyResolvedV1,
    DifficultyResolvedV1 {
        difficulty_id: ex(12),
        how: "coal delivered".into()
    }
);
example!(
    DifficultyDroppedV1,
    DifficultyDroppedV1 {
        difficulty_id: ex(12),
        reason: "family moved".into()
    }
);
example!(
    ErrandDoneV1,
    ErrandDoneV1 {
        pairing_id: ex(9),
        description: "renewed disability card".into(),
        result: "card issued".into()
    }
);
example!(
    AidGivenV1,
    AidGivenV1 {
        pairing_id: ex(9),
        form: AidForm::Goods,
        value_fen: Money(30_000),
        fund_source: "cadre's own".into(),
        item: Some("rice, 10 kg bag".into()),
        quantity: Some(3),
        unit_value_fen: Some(Money(10_000)),
        receipt_ref: "R-2023-0001".into()
    }
);
example!(
    EscalationRaisedV1,
    EscalationRaisedV1 {
        escalation_id: ex(13),
        pairing_id: ex(9),
        to_level: "县民政局".into(),
        issue: "housing repair".into()
    }
);
example!(
    EscalationAcknowledgedV1,
    EscalationAcknowledgedV1 {
        escalation_id: ex(13),
        by: "县民政局".into()
    }
);
example!(
    EscalationAnsweredV1,
    EscalationAnsweredV1 {
        escalation_id: ex(13),
        answer: "repair funded".into()
    }
);
example!(
    EscalationClosedV1,
    EscalationClosedV1 {
        escalation_id: ex(13),
        outcome: "repaired".into()
    }
);
example!(
    StudentAidPaidV1,
    StudentAidPaidV1 {
        pupil_id: ex(4),
        programme: AidProgramme::ForOrphans,
        term: "2023-autumn".into(),
        amount_fen: Money(50_000)
    }
);
example!(
    PlacementDecidedV1,
    PlacementDecidedV1 {
        placement_id: ex(14),
        pupil_id: ex(4),
        mode: PlacementMode::RegularClass,
        school_id: ex(7),
        on: ex_date()
    }
);
example!(
    PlacementChangedV1,
    PlacementChangedV1 {
        placement_id: ex(14),
        mode: PlacementMode::HomeTeaching,
        school_id: ex(7),
        on: ex_date()
    }
);
example!(
    PlacementEndedV1,
    PlacementEndedV1 {
        placement_id: ex(14),
        on: ex_date(),
        reason: "finished compulsory schooling".into()
    }
);
example!(
    CarePlanOpenedV1,
    CarePlanOpenedV1 {
        plan_id: ex(15),
        pupil_id: ex(4),
        teacher_id: ex(16),
        scheme: PlanScheme::OneToOne,
        goals: "reading at grade level".into(),
        measures: "two tutoring hours a week".into(),
        next_review: ex_date()
    }
);
example!(
    CarePlanReviewedV1,
    CarePlanReviewedV1 {
        plan_id: ex(15),
        progress: "reading improved".into(),
        next_review: ex_date()
    }
);
example!(
    CarePlanTeacherChangedV1,
    CarePlanTeacherChangedV1 {
        plan_id: ex(15),
        teacher_id: ex(17)
    }
);
example!(
    CarePlanClosedV1,
    CarePlanClosedV1 {
        plan_id: ex(15),
        reason: "graduated".into()
    }
);
example!(
    ClaimFiledV1,
    ClaimFiledV1 {
        claim_id: ex(18),
        metric: "home_visits".into(),
        scope_unit_id: None,
        period_from: Date::ymd(2023, 1, 1),
        period_to: Date::ymd(2023, 12, 31),
        value: 212,
        comparison: Comparison::Exactly,
        source_document: "庆阳市教育局 结对关爱 report".into(),
        reported_on: ex_date()
    }
);
example!(
    RecordVoidedV1,
    RecordVoidedV1 {
        target_event_id: ex(19),
        reason: "entered twice".into()
    }
);
example!(
    RecordCorrectedV1,
    RecordCorrectedV1 {
        target_event_id: ex(19),
        reason: "wrong channel".into(),
        event_type: ContactRecordedV2::EVENT_TYPE.into(),
        schema_version: 2,
        payload: codec::encode_payload(&ContactRecordedV2::example()).unwrap_or_default()
    }
);
example!(
    LateEntryNotedV1,
    LateEntryNotedV1 {
        target_event_id: ex(19),
        reason: "the visit log was found in the township office in June".into()
    }
);
example!(
    TokenGrantedV1,
    TokenGrantedV1 {
        token_id: ex(20),
        secret_sha256: "00".repeat(32),
        role: Role::Recorder,
        person_id: Some(ex(3)),
        unit_id: None
    }
);
example!(
    TokenGrantedV2,
    TokenGrantedV2 {
        token_id: ex(20),
        secret_sha256: "00".repeat(32),
        role: Role::Recorder,
        person_id: Some(ex(3)),
        unit_id: None,
        expires_at: crate::time::parse_instant("2024-04-09T10:00:00+08:00").ok()
    }
);
example!(
    TokenRevokedV1,
    TokenRevokedV1 {
        token_id: ex(20),
        reason: "phone lost".into()
    }
);
