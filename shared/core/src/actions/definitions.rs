//! The HubSpot app's definitions of the six actions (Automation Actions v4): their input fields
//! (with external options served by each action's `/options`), output fields, labels and the
//! records they run on. `infra/hubspot/actions/*.json` are these, with the action's URL left as
//! [`ACTION_URL`]; registration fills it in and creates or updates each definition.

use serde_json::{json, Map, Value};

use super::inputs::{self, outputs};
use super::ActionKind;

/// What the definition files say where the action's URL (ending in `/`) goes.
pub const ACTION_URL: &str = "{{actionUrl}}";
/// The path of the options endpoint under an action's URL.
pub const OPTIONS_PATH: &str = "options";
/// The name the workflow editor shows as the app's.
pub const APP_NAME: &str = "QuickBooks Online Sync";

/// The input fields of an action, in the order the editor shows them.
pub fn input_fields(kind: ActionKind) -> Vec<&'static str> {
    let mut fields = vec![inputs::ACCOUNT];
    if kind == ActionKind::CreateExpense {
        return fields;
    }
    fields.extend([inputs::CUSTOMER, inputs::ITEM, inputs::CREATE_PRODUCTS]);
    if kind == ActionKind::CreateInvoice {
        fields.push(inputs::TERM);
    }
    fields.push(inputs::MEMO);
    fields
}

/// The output fields of an action.
pub fn output_fields(kind: ActionKind) -> Vec<&'static str> {
    let mut fields = vec![
        outputs::DOCUMENT_ID,
        outputs::DOCUMENT_NUMBER,
        outputs::DOCUMENT_TOTAL,
    ];
    if kind != ActionKind::CreateExpense {
        fields.push(outputs::CUSTOMER_ID);
    }
    if kind == ActionKind::CreatePaidInvoice {
        fields.push(outputs::PAYMENT_ID);
    }
    fields.extend([outputs::MESSAGE, outputs::ERROR_CODE]);
    fields
}

fn label(field: &str) -> (&'static str, &'static str) {
    match field {
        inputs::ACCOUNT => (
            "QuickBooks account",
            "Empty: the portal's only connected QuickBooks company.",
        ),
        inputs::CUSTOMER => (
            "QuickBooks customer",
            "Empty: the customer of the record's first associated contact (made from it when needed).",
        ),
        inputs::ITEM => (
            "Item for unmatched lines",
            "Lines whose product matches no QuickBooks item (by link or SKU) are booked on it. Empty: such lines stop the action.",
        ),
        inputs::CREATE_PRODUCTS => (
            "Create the product in QuickBooks if it doesn't exist?",
            "Yes: a line whose product matches no QuickBooks item makes one (once). Empty: no.",
        ),
        inputs::TERM => (
            "Payment terms",
            "Empty: the customer's terms, else the company's default.",
        ),
        inputs::MEMO => ("Memo", "Kept on the document as its private note."),
        outputs::DOCUMENT_ID => ("QuickBooks document id", ""),
        outputs::DOCUMENT_NUMBER => ("QuickBooks document number", ""),
        outputs::DOCUMENT_TOTAL => ("QuickBooks document total", ""),
        outputs::CUSTOMER_ID => ("QuickBooks customer id", ""),
        outputs::PAYMENT_ID => ("QuickBooks payment id", ""),
        outputs::MESSAGE => ("Message", ""),
        outputs::ERROR_CODE => ("Error code", ""),
        _ => ("", ""),
    }
}

fn description(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::CreateInvoice => "Creates a QuickBooks invoice from the deal's or quote's line items.",
        ActionKind::CreateEstimate => "Creates a QuickBooks estimate from the deal's or quote's line items.",
        ActionKind::CreateSalesReceipt => "Creates a QuickBooks sales receipt from a deal's, quote's or payment's line items.",
        ActionKind::CreatePaidInvoice => "Creates a QuickBooks invoice and its payment from a HubSpot payment (non-taxable lines only).",
        ActionKind::CreateExpense => "Books a HubSpot payment's processing and platform fees as a QuickBooks expense.",
        ActionKind::CreateRefundReceipt => "Creates a QuickBooks refund receipt once a HubSpot payment is refunded in full.",
    }
}

fn input_definition(field: &str) -> Value {
    let select_from_options = json!({
        "name": field, "type": "enumeration", "fieldType": "select",
        "optionsUrl": format!("{ACTION_URL}{OPTIONS_PATH}"),
    });
    let (type_definition, value_types) = match field {
        inputs::CREATE_PRODUCTS => (
            json!({"name": field, "type": "enumeration", "fieldType": "select",
                   "options": [{"label": "Yes", "value": "yes"}, {"label": "No", "value": "no"}]}),
            json!(["STATIC_VALUE"]),
        ),
        inputs::MEMO => (
            json!({"name": field, "type": "string", "fieldType": "text"}),
            json!(["STATIC_VALUE", "OBJECT_PROPERTY"]),
        ),
        inputs::CUSTOMER => (
            select_from_options,
            json!(["STATIC_VALUE", "OBJECT_PROPERTY"]),
        ),
        _ => (select_from_options, json!(["STATIC_VALUE"])),
    };
    json!({"typeDefinition": type_definition, "supportedValueTypes": value_types, "isRequired": false})
}

/// The definition of `kind` with its URL left as [`ACTION_URL`].
pub fn definition(kind: ActionKind, payment_object_type: &str) -> Value {
    let inputs = input_fields(kind);
    let outputs = output_fields(kind);
    let labels_of = |fields: &[&str],
                     pick: fn((&'static str, &'static str)) -> &'static str|
     -> Map<String, Value> {
        fields
            .iter()
            .map(|f| (f.to_string(), pick(label(f))))
            .filter(|(_, text)| !text.is_empty())
            .map(|(f, text)| (f, Value::String(text.to_owned())))
            .collect()
    };
    json!({
        "actionUrl": ACTION_URL,
        "published": true,
        "objectTypes": inputs::object_types(kind, payment_object_type),
        "inputFields": inputs.iter().map(|f| input_definition(f)).collect::<Vec<_>>(),
        "outputFields": outputs.iter().map(|f| json!({"typeDefinition": {"name": f, "type": "string", "fieldType": "text"}})).collect::<Vec<_>>(),
        "labels": {"en": {
            "actionName": kind.label(),
            "actionDescription": description(kind),
            "appDisplayName": APP_NAME,
            "actionCardContent": kind.label(),
            "inputFieldLabels": labels_of(&inputs, |l| l.0),
            "inputFieldDescriptions": labels_of(&inputs, |l| l.1),
            "outputFieldLabels": labels_of(&outputs, |l| l.0),
        }},
        "functions": [],
    })
}

/// A definition file's text with its action's URL filled in.
pub fn render(definition: &str, action_url: &str) -> Result<Value, serde_json::Error> {
    let url = if action_url.ends_with('/') {
        action_url.to_owned()
    } else {
        format!("{action_url}/")
    };
    serde_json::from_str(&definition.replace(ACTION_URL, &url))
}

/// The file name of an action's definition under `infra/hubspot/actions/`.
pub fn file_name(kind: ActionKind) -> String {
    format!("{}.json", kind.document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_offers_the_inputs_it_reads_and_the_outputs_it_answers() {
        for kind in ActionKind::ALL {
            let definition = definition(kind, "COMMERCE_PAYMENT");
            let names: Vec<&str> = definition["inputFields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["typeDefinition"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, input_fields(kind), "{kind:?}");
            assert_eq!(definition["labels"]["en"]["actionName"], kind.label());
            for field in names {
                assert!(
                    definition["labels"]["en"]["inputFieldLabels"][field].is_string(),
                    "{kind:?} labels {field}"
                );
            }
        }
        assert!(input_fields(ActionKind::CreateInvoice).contains(&inputs::TERM));
        assert!(!input_fields(ActionKind::CreateEstimate).contains(&inputs::TERM));
        assert!(output_fields(ActionKind::CreatePaidInvoice).contains(&outputs::PAYMENT_ID));
    }

    #[test]
    fn rendering_fills_in_the_action_url() {
        let text = definition(ActionKind::CreateInvoice, "COMMERCE_PAYMENT").to_string();
        let rendered = render(&text, "https://abc.lambda-url.us-east-1.on.aws").unwrap();
        assert_eq!(
            rendered["actionUrl"],
            "https://abc.lambda-url.us-east-1.on.aws/"
        );
        assert_eq!(
            rendered["inputFields"][0]["typeDefinition"]["optionsUrl"],
            "https://abc.lambda-url.us-east-1.on.aws/options"
        );
        assert!(!rendered.to_string().contains(ACTION_URL));
    }

    /// The files HubSpot is given are these definitions, word for word.
    #[test]
    fn the_definition_files_are_the_definitions() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/hubspot/actions");
        for kind in ActionKind::ALL {
            let path = dir.join(file_name(kind));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                file,
                definition(kind, "COMMERCE_PAYMENT"),
                "{} differs from the code: regenerate it with `local-stack action-definitions`",
                path.display()
            );
        }
    }
}
