//! Gaming tables and their settings.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loyalty_core::Name;
use loyalty_core::limits::{
    CONVERSION_RATE_MAX, NAME_CHARS_MAX, POINT_MULTIPLIER_MAX, ROUNDS_PER_HOUR_MAX, SEATS_MAX,
};
use loyalty_core::{GameSettings, Permission};
use loyalty_store::ops;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::validate::{decimal_in, field, text};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{RawBody, parse_json, path_id};
use crate::idem::{self, run_write};

// ---------------------------------------------------------------- tables

#[derive(Deserialize)]
struct NewTable {
    name: String,
    game_type: String,
    #[serde(deserialize_with = "super::validate::de_decimal")]
    house_edge: Decimal,
    average_rounds_per_hour: u32,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    points_conversion_rate: Option<Decimal>,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    point_multiplier: Option<Decimal>,
    seats_available: Option<u32>,
}

#[derive(Deserialize)]
struct TablePatch {
    name: Option<String>,
    game_type: Option<String>,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    house_edge: Option<Decimal>,
    average_rounds_per_hour: Option<u32>,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    points_conversion_rate: Option<Decimal>,
    #[serde(default, deserialize_with = "super::validate::de_decimal_opt")]
    point_multiplier: Option<Decimal>,
    seats_available: Option<u32>,
}

fn house_edge(v: Decimal) -> ApiResult<Decimal> {
    decimal_in("house_edge", v, Decimal::ZERO, Decimal::ONE_HUNDRED, false)
}
fn rounds_per_hour(v: u32) -> ApiResult<u32> {
    if !(1..=ROUNDS_PER_HOUR_MAX).contains(&v) {
        return Err(ApiError::validation(
            "average_rounds_per_hour",
            format!("must be 1-{ROUNDS_PER_HOUR_MAX}"),
        ));
    }
    Ok(v)
}
fn conversion_rate(v: Decimal) -> ApiResult<Decimal> {
    decimal_in(
        "points_conversion_rate",
        v,
        Decimal::ZERO,
        Decimal::from(CONVERSION_RATE_MAX),
        false,
    )
}
fn point_multiplier(v: Decimal) -> ApiResult<Decimal> {
    decimal_in(
        "point_multiplier",
        v,
        Decimal::ZERO,
        Decimal::from(POINT_MULTIPLIER_MAX),
        false,
    )
}
fn seats(v: u32) -> ApiResult<u32> {
    if v > SEATS_MAX {
        return Err(ApiError::validation(
            "seats_available",
            format!("must be 0-{SEATS_MAX}"),
        ));
    }
    Ok(v)
}

pub(super) async fn create_table(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::TablesWrite)?;
    let input: NewTable = parse_json(&body)?;
    let name = field("name", Name::new(&input.name))?;
    let game_type = field("game_type", Name::new(&input.game_type))?;
    let settings = GameSettings {
        house_edge: house_edge(input.house_edge)?,
        average_rounds_per_hour: rounds_per_hour(input.average_rounds_per_hour)?,
        points_conversion_rate: conversion_rate(
            input.points_conversion_rate.unwrap_or(Decimal::TEN),
        )?,
        point_multiplier: point_multiplier(input.point_multiplier.unwrap_or(Decimal::ONE))?,
        seats_available: seats(input.seats_available.unwrap_or(7))?,
    };
    let key = idem::parse(&headers, &caller, "create_table", "/v1/tables", &body)?;
    let ctx = st.op_ctx(Some(&caller), key.as_ref().map(|k| k.key.clone()));
    let out = run_write(
        &st,
        ctx,
        key,
        move |tx, ctx| ops::create_table(tx, ctx, name, game_type, settings),
        |table, _| (StatusCode::CREATED, json!(table)),
    )
    .await?;
    Ok(out.into_response())
}

pub(super) async fn get_table(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Permission::PlayersRead)?;
    let id = path_id(&id, "table")?;
    let table = st
        .store
        .read(move |tx| tx.table(id))
        .await?
        .ok_or_else(|| ApiError::not_found("table"))?;
    Ok(axum::Json(table).into_response())
}

pub(super) async fn patch_table(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    caller.require(Permission::TablesWrite)?;
    let id = path_id(&id, "table")?;
    let p: TablePatch = parse_json(&body)?;
    let name = p
        .name
        .map(|v| text("name", &v, 1, NAME_CHARS_MAX))
        .transpose()?;
    let game_type = p
        .game_type
        .map(|v| text("game_type", &v, 1, NAME_CHARS_MAX))
        .transpose()?;
    let edge = p.house_edge.map(house_edge).transpose()?;
    let rph = p.average_rounds_per_hour.map(rounds_per_hour).transpose()?;
    let conv = p.points_conversion_rate.map(conversion_rate).transpose()?;
    let mult = p.point_multiplier.map(point_multiplier).transpose()?;
    let seats_v = p.seats_available.map(seats).transpose()?;
    let ctx = st.op_ctx(Some(&caller), None);
    let change = move |t: &mut loyalty_store::GameTable| {
        if let Some(v) = name {
            t.name = v;
        }
        if let Some(v) = game_type {
            t.game_type = v;
        }
        if let Some(v) = edge {
            t.settings.house_edge = v;
        }
        if let Some(v) = rph {
            t.settings.average_rounds_per_hour = v;
        }
        if let Some(v) = conv {
            t.settings.points_conversion_rate = v;
        }
        if let Some(v) = mult {
            t.settings.point_multiplier = v;
        }
        if let Some(v) = seats_v {
            t.settings.seats_available = v;
        }
    };
    let out = run_write(
        &st,
        ctx,
        None,
        move |tx, ctx| ops::patch_table(tx, ctx, loyalty_core::TableId::of(id), change),
        |table, _| (StatusCode::OK, json!(table)),
    )
    .await?;
    Ok(out.into_response())
}
