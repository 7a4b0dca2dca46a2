//! The query endpoint: grammar, paging, active-only default, COUNT, envelope quirks, errors.

mod harness;
use harness::{code, Sbx};
use reqwest::StatusCode;
use serde_json::json;

async fn with_customers(n: usize) -> Sbx {
    let sbx = Sbx::start().await;
    for i in 1..=n {
        let mut body = json!({"DisplayName": format!("Customer {i:03}"), "CompanyName": if i % 2 == 0 { "Even Co" } else { "Odd Co" }});
        if i % 3 == 0 {
            body["PrimaryEmailAddr"] = json!({"Address": format!("c{i}@example.com")});
        }
        sbx.create("customer", "Customer", body).await;
    }
    sbx
}

#[tokio::test]
async fn paging_is_one_based_and_max_results_is_rows_returned() {
    let sbx = with_customers(25).await;
    let (s, page) = sbx
        .query("SELECT * FROM Customer ORDERBY DisplayName STARTPOSITION 11 MAXRESULTS 10")
        .await;
    assert_eq!(s, StatusCode::OK);
    let q = &page["QueryResponse"];
    assert_eq!(q["startPosition"], 11);
    assert_eq!(q["maxResults"], 10);
    assert_eq!(q["Customer"][0]["DisplayName"], "Customer 011");
    assert!(q.get("totalCount").is_none());
    let (_, last) = sbx
        .query("SELECT * FROM Customer ORDER BY DisplayName DESC STARTPOSITION 21 MAXRESULTS 10")
        .await;
    assert_eq!(last["QueryResponse"]["maxResults"], 5);
    assert_eq!(
        last["QueryResponse"]["Customer"][4]["DisplayName"],
        "Customer 001"
    );
    let (_, empty) = sbx.query("SELECT * FROM Customer STARTPOSITION 100").await;
    assert_eq!(empty["QueryResponse"], json!({}));
    assert!(empty["time"].is_string());
}

#[tokio::test]
async fn count_star_returns_total_count_only() {
    let sbx = with_customers(7).await;
    let (s, body) = sbx
        .query("select count(*) from Customer where CompanyName = 'Odd Co'")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["QueryResponse"], json!({"totalCount": 4}));
}

#[tokio::test]
async fn escaped_quotes_like_in_and_nested_fields() {
    let sbx = with_customers(6).await;
    sbx.customer("Amy's Bird Sanctuary").await;
    let (_, exact) = sbx
        .query(r"SELECT * FROM Customer WHERE DisplayName = 'Amy\'s Bird Sanctuary'")
        .await;
    assert_eq!(exact["QueryResponse"]["maxResults"], 1);
    let (_, like) = sbx
        .query("SELECT * FROM Customer WHERE DisplayName LIKE '%bird%'")
        .await;
    assert_eq!(
        like["QueryResponse"]["Customer"][0]["DisplayName"],
        "Amy's Bird Sanctuary"
    );
    let (_, by_email) = sbx
        .query("SELECT * FROM Customer WHERE PrimaryEmailAddr = 'c6@example.com'")
        .await;
    assert_eq!(
        by_email["QueryResponse"]["Customer"][0]["DisplayName"],
        "Customer 006"
    );
    let (_, ids) = sbx
        .query("SELECT * FROM Customer WHERE Id IN ('1', '3', '5')")
        .await;
    assert_eq!(ids["QueryResponse"]["maxResults"], 3);
    let (_, recent) = sbx
        .query("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2020-01-01T00:00:00-07:00' AND Metadata.CreateTime <= '2999-01-01' MAXRESULTS 2")
        .await;
    assert_eq!(recent["QueryResponse"]["maxResults"], 2);
    let (_, none) = sbx
        .query("SELECT * FROM Customer WHERE MetaData.LastUpdatedTime > '2999-01-01T00:00:00Z'")
        .await;
    assert_eq!(none["QueryResponse"], json!({}));
}

#[tokio::test]
async fn name_lists_are_active_only_unless_asked() {
    let sbx = with_customers(3).await;
    sbx.post(
        "customer",
        json!({"Id": "2", "SyncToken": "0", "sparse": true, "Active": false}),
    )
    .await;
    let (_, active) = sbx.query("SELECT COUNT(*) FROM Customer").await;
    assert_eq!(active["QueryResponse"]["totalCount"], 2);
    let (_, all) = sbx
        .query("SELECT * FROM Customer WHERE Active IN (true, false)")
        .await;
    assert_eq!(all["QueryResponse"]["maxResults"], 3);
    let (_, inactive) = sbx
        .query("SELECT * FROM Customer WHERE Active = false")
        .await;
    assert_eq!(inactive["QueryResponse"]["Customer"][0]["Id"], "2");
}

#[tokio::test]
async fn max_results_is_capped_at_1000_and_numbers_compare_numerically() {
    let sbx = Sbx::start().await;
    sbx.control(
        reqwest::Method::POST,
        "/_sandbox/seed/generate",
        json!({"seed": 3, "customers": 1100, "items": 2, "invoices": 0, "estimates": 0, "sales_receipts": 0}),
    )
    .await;
    let (_, page) = sbx.query("SELECT * FROM Customer MAXRESULTS 5000").await;
    assert_eq!(page["QueryResponse"]["maxResults"], 1000);
    let (_, default_page) = sbx.query("SELECT * FROM Customer").await;
    assert_eq!(default_page["QueryResponse"]["maxResults"], 100);
    let (_, big_ids) = sbx
        .query("SELECT COUNT(*) FROM Customer WHERE Id > '999'")
        .await;
    assert_eq!(big_ids["QueryResponse"]["totalCount"], 101);
}

#[tokio::test]
async fn syntax_errors_and_unknown_entities() {
    let sbx = Sbx::start().await;
    let (s, bad) = sbx
        .query("SELECT * FROM Customer WHERE DisplayName = 'x' OR Id = '1'")
        .await;
    assert_eq!((s, code(&bad).as_str()), (StatusCode::BAD_REQUEST, "4000"));
    assert!(bad["Fault"]["Error"][0]["Detail"]
        .as_str()
        .unwrap_or("")
        .starts_with("QueryParserError"));
    let (s, unknown) = sbx.query("SELECT * FROM Custmoer").await;
    assert_eq!(
        (s, code(&unknown).as_str()),
        (StatusCode::BAD_REQUEST, "4001")
    );
    assert_eq!(
        unknown["Fault"]["Error"][0]["Detail"],
        "QueryValidationError: invalid context declaration: Custmoer"
    );
}

#[tokio::test]
async fn query_by_post_with_application_text() {
    let sbx = with_customers(2).await;
    let resp = sbx
        .http
        .post(sbx.api("query?minorversion=75"))
        .bearer_auth(&sbx.token)
        .header("Content-Type", "application/text")
        .body("SELECT *, Sku FROM Item")
        .send()
        .await
        .expect("query");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["QueryResponse"]["Item"][0]["Name"], "Services");
}

#[tokio::test]
async fn a_property_the_entity_does_not_have_is_refused() {
    let sbx = with_customers(2).await;
    for bad in [
        "SELECT * FROM Customer WHERE EmailAddress = 'x@example.com'",
        "SELECT * FROM Customer WHERE PrimaryEmail = 'x'",
        "SELECT * FROM Item WHERE Skew = 'A-1'",
        "SELECT * FROM Customer ORDERBY LastUpdated",
    ] {
        let (status, body) = sbx.query(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(code(&body), "4001", "{bad}: {body}");
        assert!(
            body.to_string().contains("is not queryable"),
            "{bad}: {body}"
        );
    }
    for good in [
        "SELECT * FROM Customer WHERE PrimaryEmailAddr = 'c3@example.com'",
        "SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '2020-01-01' ORDERBY MetaData.LastUpdatedTime",
        "SELECT *, Sku FROM Item WHERE Sku = 'X' AND Active IN (true, false)",
    ] {
        let (status, body) = sbx.query(good).await;
        assert_eq!(status, StatusCode::OK, "{good}: {body}");
    }
}
