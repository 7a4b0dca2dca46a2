//! Associations v4 over HTTP: HubSpot-defined type ids, both directions kept consistent,
//! labels, batch create/read/archive, and associations at create time.

mod hubspot_harness;
use axum::http::StatusCode;
use hubspot_harness::Hub;
use reqwest::Method;
use serde_json::{json, Value};

fn type_ids(results: &Value, to: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = results["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["toObjectId"].to_string().trim_matches('"') == to)
        .flat_map(|r| {
            r["associationTypes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|t| t["typeId"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn pairs_are_written_both_ways_with_hubspot_type_ids() {
    let h = Hub::start().await;
    let deal = h.create("deals", json!({"dealname": "D"})).await;
    let line = h
        .create(
            "line_items",
            json!({"name": "L", "price": "5", "quantity": "2"}),
        )
        .await;
    let contact = h
        .create("contacts", json!({"email": "c@example.com"}))
        .await;
    let company = h.create("companies", json!({"name": "Co"})).await;
    let invoice = h.create("invoices", json!({"hs_currency": "USD"})).await;
    let payment = h
        .create(
            "commerce_payments",
            json!({"hs_initial_amount": "10", "hs_initiated_date": "2026-01-01"}),
        )
        .await;
    let note = h
        .create(
            "notes",
            json!({"hs_timestamp": "2026-01-01T10:00:00Z", "hs_note_body": "paid"}),
        )
        .await;

    let cases: Vec<(&str, &str, &str, &str, u64, u64)> = vec![
        ("deals", &deal, "line_items", &line, 19, 20),
        ("deals", &deal, "contacts", &contact, 3, 4),
        ("invoices", &invoice, "contacts", &contact, 177, 178),
        ("invoices", &invoice, "companies", &company, 179, 180),
        ("invoices", &invoice, "deals", &deal, 175, 176),
        (
            "commerce_payments",
            &payment,
            "invoices",
            &invoice,
            542,
            541,
        ),
        ("notes", &note, "deals", &deal, 214, 213),
    ];
    for (from, from_id, to, to_id, forward, back) in cases {
        let (status, body) = h
            .call(
                Method::PUT,
                &format!("/crm/v4/objects/{from}/{from_id}/associations/default/{to}/{to_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{from}->{to}: {body}");
        assert_eq!(
            body["results"][0]["associationSpec"]["associationTypeId"],
            forward
        );
        let (_, f) = h
            .get(&format!(
                "/crm/v4/objects/{from}/{from_id}/associations/{to}"
            ))
            .await;
        assert_eq!(type_ids(&f, to_id), vec![forward], "{from}->{to}");
        let (_, b) = h
            .get(&format!("/crm/v4/objects/{to}/{to_id}/associations/{from}"))
            .await;
        assert_eq!(type_ids(&b, from_id), vec![back], "{to}->{from}");
    }
    // Labelled: contact → company Primary (1) implies unlabeled 279; the inverse holds 2 and 280.
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/0-1/{contact}/associations/0-2/{company}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["labels"], json!(["Primary"]));
    let (_, f) = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies"
        ))
        .await;
    assert_eq!(type_ids(&f, &company), vec![1, 279]);
    let (_, b) = h
        .get(&format!(
            "/crm/v4/objects/companies/{company}/associations/contacts"
        ))
        .await;
    assert_eq!(type_ids(&b, &contact), vec![2, 280]);
    let labels: Vec<Value> = f["results"][0]["associationTypes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        labels.iter().any(|t| t["label"] == "Primary")
            && labels.iter().any(|t| t["label"].is_null())
    );
    // v3 read with associations.
    let (_, c) = h.get(&format!("/crm/v3/objects/contacts/{contact}?associations=companies,deals&properties=associatedcompanyid")).await;
    assert_eq!(c["properties"]["associatedcompanyid"], company.as_str());
    assert_eq!(
        c["associations"]["deals"]["results"][0]["type"],
        "contact_to_deal"
    );
    // Deleting from the other side removes both directions.
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/crm/v4/objects/companies/{company}/associations/contacts/{contact}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, f) = h
        .get(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies"
        ))
        .await;
    assert_eq!(f["results"], json!([]));
    // A type id that does not fit the pair.
    let (status, _) = h
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/deals/{deal}/associations/contacts/{contact}"),
            Some(json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_create_read_archive_and_create_with_associations() {
    let h = Hub::start().await;
    let deal = h.create("deals", json!({"dealname": "D"})).await;
    let (status, body) = h
        .post("/crm/v3/objects/line_items/batch/create", json!({"inputs": (0..3).map(|i| json!({
            "properties": {"name": format!("L{i}"), "price": "1", "quantity": "1"},
            "associations": [{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]
        })).collect::<Vec<_>>()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, read) = h
        .post(
            "/crm/v4/associations/deals/line_items/batch/read",
            json!({"inputs": [{"id": deal}, {"id": "77777"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(read["results"][0]["to"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        read["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        19
    );
    let first = read["results"][0]["to"][0]["toObjectId"].clone();
    let (status, _) = h
        .post(
            "/crm/v4/associations/deals/line_items/batch/archive",
            json!({"inputs": [{"from": {"id": deal}, "to": [{"id": first.to_string()}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/line_items"
        ))
        .await;
    assert_eq!(after["results"].as_array().map(Vec::len), Some(2));
    // batch/create with labels and a bad id → 207.
    let contact = h.create("contacts", json!({"firstname": "x"})).await;
    let (status, body) = h
        .post("/crm/v4/associations/contacts/deals/batch/create", json!({"inputs": [
            {"from": {"id": contact}, "to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]},
            {"from": {"id": contact}, "to": {"id": "123456"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]}
        ]}))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["numErrors"], 1);
    let (_, d) = h
        .get(&format!(
            "/crm/v4/objects/deals/{deal}/associations/contacts"
        ))
        .await;
    assert_eq!(type_ids(&d, &contact), vec![3]);
    // A user-defined label.
    let (status, label) = h
        .post(
            "/crm/v4/associations/contacts/companies/labels",
            json!({"label": "Billing contact", "name": "billing"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{label}");
    let type_id = label["results"][0]["typeId"].as_u64().unwrap_or(0);
    let company = h.create("companies", json!({"name": "Co"})).await;
    let (status, body) = h
        .call(
            Method::PUT,
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            Some(json!([{"associationCategory": "USER_DEFINED", "associationTypeId": type_id}])),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["labels"], json!(["Billing contact"]));
}
