//! Unit tests of the domain rules against DESIGN §3.1 (points, rounding,
//! tiers) and §3.7 (roles and permissions).
//!
//! Every expected number here was worked out by hand from DESIGN, not by
//! running the code; the arithmetic is in the comment next to each vector.

use std::str::FromStr;

use proptest::prelude::*;
use rust_decimal::Decimal;

use crate::policy::rounds_played;
use crate::{
    AccrualInput, GameSettings, Permission, PolicyError, Role, Tier, TierTable, compute_points,
    round_half_away,
};

use Tier::{Bronze, Gold, Platinum, Silver};

/// A decimal from its written form, never from a float.
fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("bad decimal literal {s:?}: {e}"))
}

/// One `compute_points` vector: `(description, average_bet, seconds,
/// house_edge, rounds_per_hour, conversion_rate, point_multiplier, seats,
/// tier, expected_points)`.
type PointsVector = (
    &'static str,
    &'static str,
    u64,
    &'static str,
    u32,
    &'static str,
    &'static str,
    u32,
    Tier,
    i64,
);

/// The one helper every points vector goes through.
#[allow(clippy::too_many_arguments)]
fn points(
    average_bet: Decimal,
    seconds_played: u64,
    house_edge: Decimal,
    average_rounds_per_hour: u32,
    points_conversion_rate: Decimal,
    point_multiplier: Decimal,
    seats_available: u32,
    tier: Tier,
) -> Result<i64, PolicyError> {
    let settings = GameSettings {
        house_edge,
        average_rounds_per_hour,
        points_conversion_rate,
        point_multiplier,
        seats_available,
    };
    let input = AccrualInput {
        average_bet,
        seconds_played,
        settings: &settings,
        tier,
    };
    compute_points(&input, &TierTable::default())
}

#[rustfmt::skip]
const POINTS_VECTORS: &[PointsVector] = &[
    // --- tier multipliers ---------------------------------------------------
    // rounds = 3600/3600*60 = 60 (= rph, no volume bonus); theo = 100*2/100*60 = 120;
    // 120*10*1*1.0 = 1200
    ("bronze baseline, one hour at 60/h", "100", 3600, "2", 60, "10", "1", 7, Bronze, 1200),
    // 120*10*1*1.25 = 1500
    ("silver multiplies by 1.25", "100", 3600, "2", 60, "10", "1", 7, Silver, 1500),
    // 120*10*1*1.5 = 1800
    ("gold multiplies by 1.5", "100", 3600, "2", 60, "10", "1", 7, Gold, 1800),
    // 120*10*1*2.0 = 2400
    ("platinum multiplies by 2", "100", 3600, "2", 60, "10", "1", 7, Platinum, 2400),
    // --- empty-seat bonus ---------------------------------------------------
    // 1200 * (1 + 0.05*(7-6)) = 1200*1.05 = 1260
    ("six seats: one empty seat, x1.05", "100", 3600, "2", 60, "10", "1", 6, Bronze, 1260),
    // 1200 * (1 + 0.05*6) = 1200*1.30 = 1560
    ("one seat: six empty seats, x1.30", "100", 3600, "2", 60, "10", "1", 1, Bronze, 1560),
    // 1200 * (1 + 0.05*7) = 1200*1.35 = 1620
    ("zero seats: seven empty seats, x1.35", "100", 3600, "2", 60, "10", "1", 0, Bronze, 1620),
    // seats 12 >= 7: no bonus; 1200
    ("twelve seats: no bonus", "100", 3600, "2", 60, "10", "1", 12, Bronze, 1200),
    // seats 20 >= 7: no bonus; 1200
    ("twenty seats: no bonus", "100", 3600, "2", 60, "10", "1", 20, Bronze, 1200),
    // --- high-volume bonus --------------------------------------------------
    // rounds = 3600*100/3600 = 100 = rph, no bonus; theo = 10*1/100*100 = 10; 10*10 = 100
    ("rounds equal to rph: no volume bonus", "10", 3600, "1", 100, "10", "1", 7, Bronze, 100),
    // rounds = 3636*100/3600 = 101 > 100; theo = 10*0.01*101 = 10.1; 101 * 1.1 = 111.1 -> 111
    ("rounds one past rph: x1.1", "10", 3636, "1", 100, "10", "1", 7, Bronze, 111),
    // rounds = 3617*100/3600 = 100.47 -> 100 = rph, no bonus; 10*0.01*100*10 = 100
    ("100.47 rounds round down to rph: no bonus", "10", 3617, "1", 100, "10", "1", 7, Bronze, 100),
    // rounds = 3618*100/3600 = 100.5 -> 101 > 100: 101 * 1.1 = 111.1 -> 111
    ("100.5 rounds round up past rph: bonus", "10", 3618, "1", 100, "10", "1", 7, Bronze, 111),
    // --- rounds rounding ----------------------------------------------------
    // rounds = 30*60/3600 = 0.5 -> 1; theo = 100*0.02*1 = 2; 2*10 = 20
    ("thirty seconds at sixty per hour is one round", "100", 30, "2", 60, "10", "1", 7, Bronze, 20),
    // rounds = 29*60/3600 = 0.483 -> 0; theo = 0
    ("twenty-nine seconds at sixty per hour is no round", "100", 29, "2", 60, "10", "1", 7, Bronze, 0),
    // rounds = 90*20/3600 = 0.5 -> 1; theo = 100*0.05*1 = 5; 5*10 = 50
    ("ninety seconds at twenty per hour is one round", "100", 90, "5", 20, "10", "1", 7, Bronze, 50),
    // --- points rounding ----------------------------------------------------
    // rounds 1; theo = 25*0.01*1 = 0.25; 0.25*10 = 2.5 -> 3 (not banker's 2)
    ("points of exactly 2.5 round up to 3", "25", 60, "1", 60, "10", "1", 7, Bronze, 3),
    // rounds 1; theo = 24.9*0.01 = 0.249; 2.49 -> 2
    ("points of 2.49 round down to 2", "24.9", 60, "1", 60, "10", "1", 7, Bronze, 2),
    // rounds = 7200*30/3600 = 60 > 30; theo = 50*0.05*60 = 150; 150*1*0.5 = 75; 75*1.1 = 82.5 -> 83
    ("half table multiplier and volume bonus give 82.5 -> 83", "50", 7200, "5", 30, "1", "0.5", 7, Bronze, 83),
    // rounds = 180*60/3600 = 3; theo = 150*2.7/100*3 = 4.05*3 = 12.15; 12.15*10 = 121.5 -> 122
    // (in f64 this is 121.49999999999999 -> 121)
    ("the floating-point trap: 121.5 -> 122", "150", 180, "2.7", 60, "10", "1", 7, Bronze, 122),
    // --- zeros --------------------------------------------------------------
    // rounds 0 -> theo 0 -> 0, even with every bonus available
    ("zero seconds earns nothing", "100", 0, "2", 60, "10", "1", 0, Platinum, 0),
    // theo = 120; 120*0 = 0
    ("conversion rate zero earns nothing", "100", 3600, "2", 60, "0", "1", 7, Bronze, 0),
    // theo = 100*0/100*60 = 0
    ("house edge zero earns nothing", "100", 3600, "0", 60, "10", "1", 7, Bronze, 0),
    // --- other inputs -------------------------------------------------------
    // rounds 60; theo = 12.34*0.02*60 = 0.2468*60 = 14.808; 14.808*10 = 148.08 -> 148
    ("fractional average bet 12.34", "12.34", 3600, "2", 60, "10", "1", 7, Bronze, 148),
    // rounds 1; theo = 1*100/100*1 = 1; 1*10 = 10
    ("house edge of 100 percent", "1", 60, "100", 60, "10", "1", 7, Bronze, 10),
    // theo 120; 120*10*2*1.25 = 3000
    ("table multiplier 2 on silver", "100", 3600, "2", 60, "10", "2", 7, Silver, 3000),
    // --- combined bonuses ---------------------------------------------------
    // rounds = 3960*60/3600 = 66 > 60; theo = 100*0.02*66 = 132; 132*10*1*1.5 = 1980;
    // seats 5: x(1 + 0.05*2) = 1.10 -> 2178; volume x1.1 -> 2395.8 -> 2396
    ("gold, two empty seats, high volume", "100", 3960, "2", 60, "10", "1", 5, Gold, 2396),
    // rounds = 14400*50/3600 = 200 > 50; theo = 12.5*0.015*200 = 37.5; 37.5*10*1*2 = 750;
    // seats 0: x1.35 -> 1012.5; x1.1 -> 1113.75 -> 1114
    ("platinum, empty table, four hours at 50/h", "12.5", 14400, "1.5", 50, "10", "1", 0, Platinum, 1114),
    // every input at its limit: rounds = 86400*1000/3600 = 24000 > 1000;
    // theo = 1,000,000*100/100*24000 = 24,000,000,000; *1000 = 2.4e13; *100 = 2.4e15;
    // *2 = 4.8e15; *1.35 = 6.48e15; *1.1 = 7.128e15
    ("every input at its limit", "1000000", 86400, "100", 1000, "1000", "100", 0, Platinum, 7_128_000_000_000_000),
];

#[test]
fn points_vectors_match_hand_computed_values() {
    assert!(POINTS_VECTORS.len() >= 24, "too few vectors");
    let mut failures = Vec::new();
    for &(what, bet, secs, edge, rph, conv, mult, seats, tier, want) in POINTS_VECTORS {
        let got = points(
            dec(bet),
            secs,
            dec(edge),
            rph,
            dec(conv),
            dec(mult),
            seats,
            tier,
        );
        if got != Ok(want) {
            failures.push(format!("{what}: want {want}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn points_vector_descriptions_are_unique() {
    let mut names: Vec<&str> = POINTS_VECTORS.iter().map(|v| v.0).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
}

#[test]
fn zero_rounds_per_hour_is_an_error_not_a_division() {
    let got = points(
        dec("100"),
        3600,
        dec("2"),
        0,
        dec("10"),
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Err(PolicyError::NoRounds));
}

#[test]
fn the_tier_before_accrual_is_the_one_applied() {
    // The caller passes the tier held before the slip; a slip that crosses
    // a threshold is still paid at the old tier: 120*10*1.0 = 1200, not 1500.
    let got = points(
        dec("100"),
        3600,
        dec("2"),
        60,
        dec("10"),
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Ok(1200));
}

#[test]
fn a_custom_tier_table_supplies_the_multiplier() {
    let mut table = TierTable::default();
    table.multipliers[1] = dec("3");
    let settings = GameSettings {
        house_edge: dec("2"),
        average_rounds_per_hour: 60,
        points_conversion_rate: dec("10"),
        point_multiplier: dec("1"),
        seats_available: 7,
    };
    let input = AccrualInput {
        average_bet: dec("100"),
        seconds_played: 3600,
        settings: &settings,
        tier: Silver,
    };
    // 120*10*1*3 = 3600
    assert_eq!(compute_points(&input, &table), Ok(3600));
}

// --- rounds played ------------------------------------------------------------

#[test]
fn rounds_played_vectors() {
    #[rustfmt::skip]
    let vectors: &[(u64, u32, u64)] = &[
        (0, 60, 0),                 // 0
        (29, 60, 0),                // 0.483 -> 0
        (30, 60, 1),                // 0.5 -> 1
        (3600, 60, 60),             // 60
        (5400, 60, 90),             // 1.5 h * 60 = 90
        (18, 100, 1),               // 1800/3600 = 0.5 -> 1
        (1, 1799, 0),               // 0.49972 -> 0
        (1, 1800, 1),               // 0.5 -> 1
        (3617, 100, 100),           // 100.47 -> 100
        (3618, 100, 101),           // 100.5 -> 101
        (86_400, 1000, 24_000),     // 24 h at 1000/h
        (86_399, 1000, 24_000),     // 23999.72 -> 24000
        (86_398, 1000, 23_999),     // 23999.44 -> 23999
        (86_400, 1, 24),            // 24 h at 1/h
        // (2^64 - 1) / 3600 = 5,124,095,576,030,431.004 -> 5,124,095,576,030,431
        (u64::MAX, 1, 5_124_095_576_030_431),
        // (2^64 - 1) * (2^32 - 1) / 3600 is about 2.2e22 > u64::MAX: saturates
        (u64::MAX, u32::MAX, u64::MAX),
    ];
    for &(secs, rph, want) in vectors {
        assert_eq!(rounds_played(secs, rph), want, "{secs} s at {rph}/h");
    }
}

// --- overflow -----------------------------------------------------------------

#[test]
fn a_decimal_overflow_is_an_error_not_a_panic() {
    // Decimal::MAX * 100 does not fit a Decimal.
    let got = points(
        Decimal::MAX,
        3600,
        dec("100"),
        60,
        dec("10"),
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
}

#[test]
fn a_conversion_rate_overflow_is_an_error() {
    // theo = 120, times Decimal::MAX overflows.
    let got = points(
        dec("100"),
        3600,
        dec("2"),
        60,
        Decimal::MAX,
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
}

#[test]
fn a_point_multiplier_overflow_is_an_error() {
    let got = points(
        dec("100"),
        3600,
        dec("2"),
        60,
        dec("10"),
        Decimal::MAX,
        0,
        Platinum,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
}

#[test]
fn points_beyond_i64_are_an_error() {
    // rounds 24000; theo = 1e15 * 100/100 * 24000 = 2.4e19 > i64::MAX (9.22e18),
    // still well inside a Decimal.
    let got = points(
        dec("1000000000000000"),
        86_400,
        dec("100"),
        1000,
        dec("1"),
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
}

#[test]
fn saturated_rounds_are_an_error_not_a_panic() {
    // rounds saturate to u64::MAX (1.8e19); *1 *100/100 *10 = 1.8e20 > i64::MAX.
    let got = points(
        dec("1"),
        u64::MAX,
        dec("100"),
        u32::MAX,
        dec("10"),
        dec("1"),
        7,
        Bronze,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
    let got = points(
        Decimal::MAX,
        u64::MAX,
        dec("100"),
        u32::MAX,
        Decimal::MAX,
        Decimal::MAX,
        0,
        Platinum,
    );
    assert_eq!(got, Err(PolicyError::Overflow));
}

#[test]
fn points_stay_exact_beyond_28_significant_digits() {
    // Every input is inside `model::limits` (<= 4 decimal places, each below
    // its maximum), yet the exact result needs 32 significant digits:
    // rounds = round(3316 * 1000 / 3600) = round(921.11) = 921 (<= 1000: no bonus)
    // points = 499056.7691 * 94.7324 / 100 * 921 * 434.8846 * 99.6465 * 1.0
    //        = 18868796421686.499999999999999960 -> 18868796421686.
    // `Decimal::checked_mul` would silently round the product to 28 digits
    // (…686.500000000000000) and answer 18868796421687; the policy computes
    // in 38-digit integers instead.
    let got = points(
        dec("499056.7691"),
        3316,
        dec("94.7324"),
        1000,
        dec("434.8846"),
        dec("99.6465"),
        7,
        Bronze,
    );
    let exact: i128 = 4_990_567_691 * 947_324 * 921 * 4_348_846 * 996_465;
    assert_eq!(exact, 18_868_796_421_686_499_999_999_999_999_960);
    assert_eq!(got, Ok(18_868_796_421_686));
}

// --- round_half_away ----------------------------------------------------------

#[test]
fn round_half_away_vectors() {
    let vectors: &[(&str, i64)] = &[
        ("0", 0),
        ("0.4", 0),
        ("0.5", 1),
        ("1.5", 2),
        ("2.5", 3), // banker's would give 2
        ("2.4999999999", 2),
        ("-0.5", -1),
        ("-2.5", -3),
        ("-2.4", -2),
        ("121.5", 122),
    ];
    for &(s, want) in vectors {
        assert_eq!(round_half_away(dec(s)), want, "round({s})");
    }
}

#[test]
fn round_half_away_saturates_beyond_i64() {
    assert_eq!(round_half_away(Decimal::MAX), i64::MAX);
    assert_eq!(round_half_away(Decimal::MIN), i64::MIN);
    assert_eq!(round_half_away(dec("9223372036854775807.4")), i64::MAX);
    assert_eq!(round_half_away(dec("-9223372036854775808.4")), i64::MIN);
}

// --- tiers --------------------------------------------------------------------

#[test]
fn tier_for_each_threshold_and_one_below() {
    let table = TierTable::default();
    let vectors: &[(i64, Tier)] = &[
        (i64::MIN, Bronze),
        (-1, Bronze),
        (0, Bronze),
        (999, Bronze),
        (1_000, Silver),
        (4_999, Silver),
        (5_000, Gold),
        (19_999, Gold),
        (20_000, Platinum),
        (1_000_000_000, Platinum),
        (i64::MAX, Platinum),
    ];
    for &(lifetime, want) in vectors {
        assert_eq!(table.tier_for(lifetime), want, "tier_for({lifetime})");
    }
}

#[test]
fn default_multipliers_are_the_design_ones() {
    let table = TierTable::default();
    assert_eq!(table.multiplier(Bronze), dec("1.0"));
    assert_eq!(table.multiplier(Silver), dec("1.25"));
    assert_eq!(table.multiplier(Gold), dec("1.5"));
    assert_eq!(table.multiplier(Platinum), dec("2.0"));
    assert_eq!(table.thresholds, [0, 1_000, 5_000, 20_000]);
    assert_eq!(table.validate(), Ok(()));
}

#[test]
fn progress_vectors() {
    let table = TierTable::default();
    #[rustfmt::skip]
    let vectors: &[(i64, u8)] = &[
        (0, 0),             // BRONZE 0/1000
        (500, 50),          // 500/1000 = 50 %
        (994, 99),          // 99.4 % -> 99
        (995, 100),         // 99.5 % -> 100 (halves away from zero, DESIGN §3.1)
        (999, 100),         // 99.9 % -> 100
        (1_000, 0),         // SILVER, 0/4000
        (1_019, 0),         // 19/4000 = 0.475 % -> 0
        (1_020, 1),         // 20/4000 = 0.5 % -> 1
        (3_000, 50),        // 2000/4000 = 50 %
        (5_000, 0),         // GOLD, 0/15000
        (12_500, 50),       // 7500/15000 = 50 %
        (19_999, 100),      // 14999/15000 = 99.993 % -> 100
        (20_000, 100),      // PLATINUM is 100
        (i64::MAX, 100),    // PLATINUM is 100
        (-1, 0),            // never happens; clamped, not wrapped
    ];
    for &(lifetime, want) in vectors {
        assert_eq!(table.progress(lifetime), want, "progress({lifetime})");
    }
}

#[test]
fn validate_rejects_a_first_threshold_other_than_zero() {
    let mut table = TierTable::default();
    table.thresholds[0] = 1;
    assert!(table.validate().is_err());
    table.thresholds[0] = -1;
    assert!(table.validate().is_err());
}

#[test]
fn validate_rejects_equal_or_decreasing_thresholds() {
    for thresholds in [
        [0, 1_000, 1_000, 20_000],
        [0, 0, 5_000, 20_000],
        [0, 5_000, 1_000, 20_000],
        [0, 1_000, 5_000, 4_999],
    ] {
        let table = TierTable {
            thresholds,
            ..TierTable::default()
        };
        assert!(table.validate().is_err(), "{thresholds:?}");
    }
}

#[test]
fn validate_rejects_a_negative_multiplier() {
    let mut table = TierTable::default();
    table.multipliers[2] = dec("-1.5");
    assert!(table.validate().is_err());
}

#[test]
fn validate_accepts_a_zero_multiplier_and_custom_thresholds() {
    let table = TierTable {
        thresholds: [0, 1, 2, i64::MAX],
        multipliers: [dec("0"), dec("1"), dec("1"), dec("1")],
    };
    assert_eq!(table.validate(), Ok(()));
}

#[test]
fn tier_names_round_trip() {
    let names = ["BRONZE", "SILVER", "GOLD", "PLATINUM"];
    for (tier, name) in Tier::ALL.into_iter().zip(names) {
        assert_eq!(tier.as_str(), name);
        assert_eq!(Tier::parse(tier.as_str()), Some(tier));
    }
    for bad in ["", "bronze", "Silver", "DIAMOND", " GOLD"] {
        assert_eq!(Tier::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn tiers_are_ordered_lowest_first() {
    assert!(Bronze < Silver && Silver < Gold && Gold < Platinum);
}

// --- roles (DESIGN §3.7) ------------------------------------------------------

/// Maps DESIGN's permission name to the enum. The match has no wildcard, so a
/// new permission will not compile until it is added to the table below.
fn permission_named(name: &str) -> Permission {
    let all = [
        Permission::PlayersRead,
        Permission::PlayersWrite,
        Permission::TablesWrite,
        Permission::RatingSlipWrite,
        Permission::LoyaltyAward,
        Permission::LoyaltyAdjust,
        Permission::WalletEscrow,
        Permission::LoyaltyViewAll,
        Permission::AuditRead,
        Permission::StaffAdmin,
    ];
    // Exhaustiveness guard: adding a variant breaks this match.
    for p in all {
        match p {
            Permission::PlayersRead
            | Permission::PlayersWrite
            | Permission::TablesWrite
            | Permission::RatingSlipWrite
            | Permission::LoyaltyAward
            | Permission::LoyaltyAdjust
            | Permission::WalletEscrow
            | Permission::LoyaltyViewAll
            | Permission::AuditRead
            | Permission::StaffAdmin => {}
        }
    }
    all.into_iter()
        .find(|p| p.as_str() == name)
        .unwrap_or_else(|| panic!("no permission named {name:?}"))
}

#[test]
fn every_role_permission_pair_matches_the_design_table() {
    // DESIGN §3.7, copied cell by cell. The "loyalty:view_all, audit:read"
    // row is written out as two rows.
    let columns = ["admin", "supervisor", "pit_boss", "cashier", "auditor"];
    #[rustfmt::skip]
    let table: [(&str, [&str; 5]); 10] = [
        //                    admin supervisor pit_boss cashier auditor
        ("players:read",     ["✓",  "✓",       "✓",     "✓",    "✓"]),
        ("players:write",    ["✓",  "✓",       "✓",     "",     ""]),
        ("tables:write",     ["✓",  "✓",       "",      "",     ""]),
        ("ratingslip:write", ["✓",  "✓",       "✓",     "",     ""]),
        ("loyalty:award",    ["✓",  "✓",       "✓",     "",     ""]),
        ("loyalty:adjust",   ["✓",  "✓",       "",      "",     ""]),
        ("wallet:escrow",    ["✓",  "✓",       "",      "✓",    ""]),
        ("loyalty:view_all", ["✓",  "✓",       "",      "",     "✓"]),
        ("audit:read",       ["✓",  "✓",       "",      "",     "✓"]),
        ("staff:admin",      ["✓",  "",        "",      "",     ""]),
    ];
    let mut checked = 0;
    for (perm_name, marks) in table {
        let perm = permission_named(perm_name);
        for (role_name, mark) in columns.into_iter().zip(marks) {
            let role = Role::parse(role_name).expect("role name");
            let want = mark == "✓";
            assert_eq!(
                role.allows(perm),
                want,
                "{role_name} / {perm_name}: DESIGN says {mark:?}"
            );
            checked += 1;
        }
    }
    // Every role and every permission was covered.
    assert_eq!(checked, Role::ALL.len() * 10);
}

#[test]
fn role_names_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("ADMIN"), None);
    assert_eq!(Role::parse("pit-boss"), None);
}

// --- properties ---------------------------------------------------------------

/// Integer reference: round(n / d) with halves away from zero, d > 0.
fn reference_round(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d); // truncates towards zero
    if 2 * r.abs() >= d { q + n.signum() } else { q }
}

/// A valid decimal input: `units` at `scale` decimal places.
fn decimal_in(max_units: i64, scale: u32) -> impl Strategy<Value = Decimal> {
    (0..=max_units).prop_map(move |u| Decimal::new(u, scale))
}

fn tier_strategy() -> impl Strategy<Value = Tier> {
    prop::sample::select(Tier::ALL.to_vec())
}

/// Settings inside the documented limits, money-like values with up to two
/// decimal places.
fn settings_strategy() -> impl Strategy<Value = GameSettings> {
    (
        decimal_in(10_000, 2), // house edge 0.00 – 100.00
        1u32..=1000,
        decimal_in(100_000, 2), // conversion rate 0.00 – 1000.00
        decimal_in(10_000, 2),  // point multiplier 0.00 – 100.00
        0u32..=20,
    )
        .prop_map(|(house_edge, rph, conv, mult, seats)| GameSettings {
            house_edge,
            average_rounds_per_hour: rph,
            points_conversion_rate: conv,
            point_multiplier: mult,
            seats_available: seats,
        })
}

fn compute(bet: Decimal, secs: u64, settings: &GameSettings, tier: Tier) -> i64 {
    let input = AccrualInput {
        average_bet: bet,
        seconds_played: secs,
        settings,
        tier,
    };
    compute_points(&input, &TierTable::default()).expect("valid inputs never overflow")
}

proptest! {
    #[test]
    fn round_half_away_agrees_with_integers_for_tenths(n in any::<i64>()) {
        let want = reference_round(i128::from(n), 10);
        prop_assert_eq!(i128::from(round_half_away(Decimal::new(n, 1))), want);
    }

    #[test]
    fn round_half_away_agrees_with_integers_for_halves(n in any::<i64>()) {
        let want = reference_round(i128::from(n), 2);
        let half = Decimal::from(n) / Decimal::TWO;
        prop_assert_eq!(i128::from(round_half_away(half)), want);
    }

    #[test]
    fn rounds_played_agrees_with_integers(secs in 0u64..=10_000_000, rph in 0u32..=100_000) {
        let want = reference_round(i128::from(secs) * i128::from(rph), 3600);
        prop_assert_eq!(i128::from(rounds_played(secs, rph)), want);
    }

    #[test]
    fn points_never_decrease_with_more_seconds(
        bet in decimal_in(10_000_000_000, 4),
        a in 0u64..=86_400,
        b in 0u64..=86_400,
        settings in settings_strategy(),
        tier in tier_strategy(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(compute(bet, lo, &settings, tier) <= compute(bet, hi, &settings, tier));
    }

    #[test]
    fn points_never_decrease_with_a_higher_average_bet(
        a in decimal_in(10_000_000_000, 4),
        b in decimal_in(10_000_000_000, 4),
        secs in 0u64..=86_400,
        settings in settings_strategy(),
        tier in tier_strategy(),
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(compute(lo, secs, &settings, tier) <= compute(hi, secs, &settings, tier));
    }

    #[test]
    fn points_are_never_negative(
        bet in decimal_in(10_000_000_000, 4),
        secs in 0u64..=86_400,
        settings in settings_strategy(),
        tier in tier_strategy(),
    ) {
        prop_assert!(compute(bet, secs, &settings, tier) >= 0);
    }

    #[test]
    fn points_match_an_exact_integer_reference(
        bet_cents in 0i64..=100_000_000, // 0.00 – 1,000,000.00
        secs in 0u64..=86_400,
        edge_hundredths in 0i64..=10_000,
        rph in 1u32..=1000,
        conv in 0i64..=1000,
        mult in 0i64..=100,
        seats in 0u32..=20,
        tier in tier_strategy(),
    ) {
        let settings = GameSettings {
            house_edge: Decimal::new(edge_hundredths, 2),
            average_rounds_per_hour: rph,
            points_conversion_rate: Decimal::from(conv),
            point_multiplier: Decimal::from(mult),
            seats_available: seats,
        };
        let got = compute(Decimal::new(bet_cents, 2), secs, &settings, tier);

        // Everything as integers over one denominator:
        // bet/100 * edge/100/100 * rounds * conv * mult * tier/100 * seat/100 * volume/10.
        let rounds = reference_round(i128::from(secs) * i128::from(rph), 3600);
        let tier_pct: i128 = match tier { Bronze => 100, Silver => 125, Gold => 150, Platinum => 200 };
        let seat_pct: i128 = if seats < 7 { 100 + 5 * (7 - i128::from(seats)) } else { 100 };
        let volume_tenths: i128 = if rounds > i128::from(rph) { 11 } else { 10 };
        let num = i128::from(bet_cents) * i128::from(edge_hundredths) * rounds
            * i128::from(conv) * i128::from(mult) * tier_pct * seat_pct * volume_tenths;
        let den: i128 = 100 * 100 * 100 * 100 * 100 * 10;
        prop_assert_eq!(i128::from(got), reference_round(num, den));
    }

    #[test]
    fn arbitrary_decimals_never_panic(
        bet in any::<(u32, u32, u32, bool, u32)>(),
        edge in any::<(u32, u32, u32, bool, u32)>(),
        conv in any::<(u32, u32, u32, bool, u32)>(),
        mult in any::<(u32, u32, u32, bool, u32)>(),
        secs in any::<u64>(),
        rph in any::<u32>(),
        seats in any::<u32>(),
        tier in tier_strategy(),
    ) {
        let d = |(lo, mid, hi, neg, scale): (u32, u32, u32, bool, u32)| {
            Decimal::from_parts(lo, mid, hi, neg, scale % 29)
        };
        let settings = GameSettings {
            house_edge: d(edge),
            average_rounds_per_hour: rph,
            points_conversion_rate: d(conv),
            point_multiplier: d(mult),
            seats_available: seats,
        };
        let input = AccrualInput { average_bet: d(bet), seconds_played: secs, settings: &settings, tier };
        // Ok or Err, but no panic.
        let _ = compute_points(&input, &TierTable::default());
    }

    #[test]
    fn tier_never_drops_as_lifetime_points_rise(a in any::<i64>(), b in any::<i64>()) {
        let table = TierTable::default();
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(table.tier_for(lo) <= table.tier_for(hi));
    }

    #[test]
    fn progress_is_a_percentage(p in any::<i64>()) {
        prop_assert!(TierTable::default().progress(p) <= 100);
    }
}

#[test]
fn accrual_explains_the_points_compute_points_gives() {
    use crate::{AccrualInput, GameSettings, Tier, TierTable, accrual, compute_points};
    use rust_decimal::Decimal;
    let settings = GameSettings {
        house_edge: "2.7".parse().unwrap(),
        average_rounds_per_hour: 60,
        points_conversion_rate: Decimal::TEN,
        point_multiplier: Decimal::ONE,
        seats_available: 5,
    };
    let tiers = TierTable::default();
    let input = AccrualInput {
        average_bet: "12.5".parse().unwrap(),
        seconds_played: 2 * 3600,
        settings: &settings,
        tier: Tier::Bronze,
    };
    let a = accrual(&input, &tiers).unwrap();
    assert_eq!(a.points, compute_points(&input, &tiers).unwrap());
    assert_eq!(a.rounds, 120);
    // 12.5 × 2.7 % × 120 rounds = 40.5, exactly.
    assert_eq!(a.theo, "40.5");
    assert_eq!(a.seconds_played, 7200);
    let names: Vec<&str> = a.bonuses.iter().map(|b| b.name).collect();
    assert_eq!(names, ["empty_seats", "long_session"]);
    assert_eq!(a.bonuses[0].factor, "1.1".parse::<Decimal>().unwrap());
    assert_eq!(a.bonuses[1].factor, "1.1".parse::<Decimal>().unwrap());
    // 40.5 × 10 × 1 × 1 × 1.1 × 1.1 = 490.05 → 490
    assert_eq!(a.points, 490);
}
