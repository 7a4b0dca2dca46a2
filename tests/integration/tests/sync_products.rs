//! Products ↔ items end to end (real binaries, both sandboxes, the local AWS endpoint):
//! QuickBooks → HubSpot by default, matching by SKU, only products with a SKU unless switched,
//! then two-way with the income-account setting.

use hubspot_qbo_core::domain::{ObjectKind, Provider};
use hubspot_qbo_core::ledger::LinkStatus;
use hubspot_qbo_core::settings::Direction;
use integration_tests::harness::{property, SyncStack};
use serde_json::json;

const PRODUCT: ObjectKind = ObjectKind::Product;

#[tokio::test]
async fn items_become_products_by_sku_and_products_become_items_two_way() -> anyhow::Result<()> {
    let s = SyncStack::start("products").await?;
    let p = s.pair().await?;
    let widget = p
        .qbo_create(
            "Item",
            json!({"Name": "Widget", "Sku": "W-1", "Type": "NonInventory", "UnitPrice": 19.99,
                "Description": "A fine widget", "PurchaseCost": 5.5, "IncomeAccountRef": {"value": "5"}}),
        )
        .await?;
    let gadget = p
        .qbo_create(
            "Item",
            json!({"Name": "Gadget", "Sku": "W-2", "Type": "Service", "UnitPrice": 7,
                "IncomeAccountRef": {"value": "6"}}),
        )
        .await?;
    let loose = p
        .qbo_create(
            "Item",
            json!({"Name": "Loose part", "Type": "Service", "UnitPrice": 1,
                "IncomeAccountRef": {"value": "6"}}),
        )
        .await?;
    // Already in HubSpot under the same SKU, in another case.
    p.hubspot_create(
        "products",
        json!({"name": "Gadget (HubSpot)", "hs_sku": "w-2", "price": "7"}),
    )
    .await?;
    s.sync().await?;

    let widget_product = p.hubspot_with("products", "hs_sku", "W-1").await?;
    assert_eq!(widget_product.len(), 1);
    let w = &widget_product[0];
    assert_eq!(
        (
            property(w, "name"),
            property(w, "price"),
            property(w, "description"),
            property(w, "hs_cost_of_goods_sold"),
            property(w, "hs_product_type"),
            property(w, "qbo_income_account"),
            property(w, "qbo_item_id"),
        ),
        (
            Some("Widget"),
            Some("19.99"),
            Some("A fine widget"),
            Some("5.5"),
            Some("non_inventory"),
            Some("Sales of Product Income"),
            widget["Id"].as_str(),
        )
    );
    let gadgets = p.hubspot_with("products", "hs_sku", "w-2").await?;
    assert_eq!(
        gadgets.len(),
        1,
        "matched by SKU without case, not made twice"
    );
    assert_eq!(property(&gadgets[0], "qbo_item_id"), gadget["Id"].as_str());
    assert_eq!(
        property(&gadgets[0], "name"),
        Some("Gadget"),
        "one-way from QuickBooks: QuickBooks' values"
    );
    assert!(p
        .hubspot_with("products", "name", "Loose part")
        .await?
        .is_empty());
    let loose_entry = p
        .entry(
            PRODUCT,
            Provider::Qbo,
            loose["Id"].as_str().unwrap_or_default(),
        )
        .await?
        .expect("the item without a SKU has an entry");
    assert_eq!(loose_entry.status, LinkStatus::Excluded);
    assert!(
        loose_entry.exclusion.unwrap_or_default().contains("no SKU"),
        "the reason is given"
    );

    // One way: a HubSpot edit stays in HubSpot; a QuickBooks edit arrives.
    let widget_id = widget["Id"].as_str().unwrap_or_default();
    p.hubspot_update(
        "products",
        w["id"].as_str().unwrap_or_default(),
        json!({"description": "edited in HubSpot"}),
    )
    .await?;
    p.qbo_update("Item", widget_id, json!({"UnitPrice": 21.5}))
        .await?;
    s.sync().await?;
    let widget_now = p.qbo_read("Item", widget_id).await?;
    assert_eq!(widget_now["Description"], "A fine widget");
    assert_eq!(
        property(
            &p.hubspot_with("products", "hs_sku", "W-1").await?[0],
            "price"
        ),
        Some("21.5")
    );

    // Two-way, new items booked on the chosen income account.
    p.settings(PRODUCT, |c| {
        c.direction = Direction::TwoWay;
        c.income_account = Some("6".into());
    })
    .await?;
    p.hubspot_create(
        "products",
        json!({"name": "Hub Service", "hs_sku": "H-1", "price": "99.50", "description": "Made in HubSpot"}),
    )
    .await?;
    let unskued = p
        .hubspot_create("products", json!({"name": "No SKU product", "price": "3"}))
        .await?;
    s.sync().await?;
    let items = p.qbo_all("Item").await?;
    let made: Vec<_> = items.iter().filter(|i| i["Sku"] == "H-1").collect();
    assert_eq!(made.len(), 1);
    assert_eq!(
        (
            &made[0]["Name"],
            &made[0]["Type"],
            made[0]["UnitPrice"].to_string(),
            &made[0]["IncomeAccountRef"]["value"]
        ),
        (
            &json!("Hub Service"),
            &json!("Service"),
            "99.5".to_owned(),
            &json!("6")
        )
    );
    assert!(!items.iter().any(|i| i["Name"] == "No SKU product"));
    let hub_service = p.hubspot_with("products", "hs_sku", "H-1").await?;
    assert_eq!(
        property(&hub_service[0], "qbo_item_id"),
        made[0]["Id"].as_str(),
        "the item's id is written back to the product it was made from"
    );

    // Products without a SKU sync once that rule is switched off (from their next change).
    p.settings(PRODUCT, |c| c.require_sku = false).await?;
    p.hubspot_update(
        "products",
        unskued["id"].as_str().unwrap_or_default(),
        json!({"price": "3.25"}),
    )
    .await?;
    s.sync().await?;
    let items = p.qbo_all("Item").await?;
    let no_sku: Vec<_> = items
        .iter()
        .filter(|i| i["Name"] == "No SKU product")
        .collect();
    assert_eq!(no_sku.len(), 1);
    assert_eq!(no_sku[0]["UnitPrice"].to_string(), "3.25");
    let (synced, failing, _, pending) = p.counts(PRODUCT).await?;
    assert_eq!((failing, pending), (0, 0));
    assert!(synced >= 4, "{synced}");

    // Quiet rounds write nothing.
    let before = (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?);
    assert!(
        before.0 > 0 && before.1 > 0,
        "writes are counted: {before:?}"
    );
    s.sync().await?;
    assert_eq!(
        (s.writes(&s.qbo).await?, s.writes(&s.hubspot).await?),
        before
    );
    s.stop().await
}
