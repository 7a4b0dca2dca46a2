//! Every error category a record, a queued message or a workflow action can fail with: what it
//! means in plain words and what to do about it (V2). One table, shared by the admin API, its
//! page and the CLI. Pure.

/// One category as a bookkeeper reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Category {
    pub code: &'static str,
    pub title: &'static str,
    /// What happened, without jargon.
    pub explanation: &'static str,
    /// What to do.
    pub fix: &'static str,
    /// Tried again by itself (no one needs to act unless it lasts).
    pub retried_automatically: bool,
}

const fn category(
    code: &'static str,
    title: &'static str,
    explanation: &'static str,
    fix: &'static str,
    retried_automatically: bool,
) -> Category {
    Category {
        code,
        title,
        explanation,
        fix,
        retried_automatically,
    }
}

/// Every category, grouped: passing trouble, connection, QuickBooks' refusals, HubSpot's
/// refusals, the sync's own rules, the workflow actions, queued work.
pub const CATEGORIES: &[Category] = &[
    // Passing trouble: tried again with time.
    category("rate_limited", "Rate limit reached", "QuickBooks or HubSpot asked us to slow down; the integration paces itself and waits as asked.", "Nothing: it goes on by itself. If it lasts for hours, another app may be using the same company's or portal's limit.", true),
    category("quickbooks_unavailable", "QuickBooks unavailable", "QuickBooks did not answer, or answered with an error of its own.", "Nothing: it is tried again. If it lasts, check status.developer.intuit.com.", true),
    category("hubspot_unavailable", "HubSpot unavailable", "HubSpot did not answer, or answered with an error of its own.", "Nothing: it is tried again. If it lasts, check status.hubspot.com.", true),
    category("token_expired", "Sign-in expired", "An access token was refused; a fresh one is fetched and the work tried again.", "Nothing, unless it lasts: then reconnect the account on the install page.", true),
    category("stale_object", "Changed meanwhile", "The record changed in QuickBooks while it was being written.", "Nothing: it is read again and retried.", true),
    // The connection.
    category("reconnect_required", "Reconnect needed", "QuickBooks or HubSpot no longer accepts this connection's sign-in (it was revoked, or expired after 100 days unused).", "Open the install page and reconnect; waiting work then goes on.", false),
    category("not_authorized", "Not allowed in QuickBooks", "The QuickBooks user who connected may not do this (an accountant or limited user).", "Reconnect as a QuickBooks admin user.", false),
    category("missing_scopes", "Permission missing in HubSpot", "The HubSpot app was installed without a permission this needs (payments, for instance).", "Reinstall the app from the install page and accept every permission.", false),
    // QuickBooks' refusals.
    category("duplicate_display_name", "Name already used in QuickBooks", "QuickBooks names must be unique across customers, vendors and employees, and another one has this name.", "Rename one of them, or turn on name disambiguation in the contact settings; then retry.", false),
    category("duplicate_document_number", "Document number already used", "Custom transaction numbers are on in QuickBooks and another document has this number.", "Give the HubSpot invoice another number, or turn custom numbers off in QuickBooks; then retry.", false),
    category("object_not_found", "Record not found", "The record to update, or one it refers to, no longer exists (deleted or made inactive).", "Restore it, or remove the reference; then retry.", false),
    category("required_field_missing", "Required field missing", "QuickBooks needs a field this record does not have.", "Fill in the field named in the message (or the setting that provides it); then retry.", false),
    category("invalid_value", "Value not accepted", "QuickBooks refused a value (a malformed email or phone, an unknown account or tax code).", "Correct the value named in the message; then retry.", false),
    category("business_validation", "QuickBooks rule", "A QuickBooks business rule refused the write; the message says which.", "Follow the message (for example, a payment larger than what is owed); then retry.", false),
    category("books_closed", "Books closed", "The document's date is in a period closed in QuickBooks.", "Change the date, or reopen the period in QuickBooks; then retry.", false),
    category("invalid_query", "QuickBooks query refused", "QuickBooks refused a query the integration made: a fault on our side.", "Report it with the message; retrying will not help until it is fixed.", false),
    category("quickbooks_validation", "Refused by QuickBooks", "QuickBooks refused the write; its message says why.", "Follow QuickBooks' message; then retry.", false),
    // HubSpot's refusals.
    category("duplicate_record", "Already exists in HubSpot", "HubSpot has another record with this unique value (an email, for contacts).", "Merge or correct the records in HubSpot; then retry.", false),
    category("hubspot_validation", "Refused by HubSpot", "HubSpot refused the write (an invalid property value, usually); its message says which.", "Correct the value; then retry.", false),
    // The sync's own rules.
    category("match_key_already_linked", "Matches an already linked record", "Its email or SKU matches a record already linked to another one, so linking it too would merge two.", "Correct the duplicate email or SKU on one side; then retry.", false),
    category("customer_not_synced", "Customer not synced yet", "The invoice's contact is not a QuickBooks customer yet.", "Nothing if the contact syncs soon; otherwise fix the contact's own failure (its record says why).", true),
    category("custom_line_item_account", "Income account for unmatched lines", "A line matches no QuickBooks item, so it goes on the Custom Line Item item, which needs an income account.", "Choose the Custom Line Item income account in the invoice settings; then retry.", false),
    category("no_lines", "Invoice without lines", "The HubSpot invoice has no line items.", "Add a line item; it syncs on its next change.", false),
    category("tax_mapping_needed", "Tax mapping needed", "The QuickBooks company is outside the US, where every line needs a tax code HubSpot does not give.", "Set a tax mapping in the invoice settings; then retry.", false),
    category("edited_in_quickbooks", "Edited in QuickBooks", "The invoice was changed in QuickBooks in a way HubSpot cannot show (its lines, for an invoice made in HubSpot).", "Make the change on the side that owns the invoice, or accept QuickBooks' version.", false),
    // The workflow actions.
    category("not_connected", "No QuickBooks account", "No QuickBooks company is connected to the HubSpot portal the workflow runs in.", "Connect one on the install page.", false),
    category("choose_account", "Several QuickBooks accounts", "The portal has several QuickBooks companies connected and the action does not say which.", "Choose the QuickBooks account in the action.", false),
    category("unknown_account", "Account not of this portal", "The QuickBooks account chosen in the action is not connected to this portal.", "Choose one of the portal's accounts in the action.", false),
    category("disconnected", "Account disconnected", "The QuickBooks account was disconnected.", "Reconnect it on the install page, or choose another account.", false),
    category("non_us_company", "QuickBooks company outside the US", "Workflow actions make documents in US companies only: elsewhere every line needs a tax code HubSpot line items do not carry.", "Create the documents in QuickBooks, or sync HubSpot invoices with a tax mapping.", false),
    category("wrong_object", "Action on the wrong record", "The action does not run on this kind of record (an expense on a deal, for instance).", "Use the action in a workflow of the record it names.", false),
    category("invalid_input", "Input not understood", "An input of the action holds something it cannot mean (a name where an id is expected, \"maybe\" for yes/no).", "Pick the value from the field's dropdown.", false),
    category("invalid_request", "Call not understood", "The call HubSpot sent could not be used.", "Report it with the message.", false),
    category("malformed_request", "Call not understood", "The body of the call is not what HubSpot sends.", "Report it with the message.", false),
    category("no_record", "Record gone", "The record the workflow ran on no longer exists.", "Nothing: re-enrol a record that exists.", false),
    category("no_contact", "No contact to bill", "The deal, quote or payment has no associated contact, and no customer is chosen in the action.", "Associate a contact, or choose the QuickBooks customer in the action.", false),
    category("customer_not_found", "Customer not found", "The QuickBooks customer chosen in the action does not exist or is inactive.", "Choose another customer, or reactivate it in QuickBooks.", false),
    category("contact_excluded", "Contact left out by the filters", "The contact sync's filters leave this contact out, so no QuickBooks customer is made for it.", "Change the contact filters, choose the customer in the action, or use legacy customer matching.", false),
    category("contact_sync_off", "Contact sync does not make customers", "The contact has no customer and the contact sync does not create customers from HubSpot contacts.", "Turn the contact sync on (HubSpot to QuickBooks), choose the customer, or use legacy customer matching.", false),
    category("customer_not_created", "Customer could not be made", "Making the contact a QuickBooks customer failed; the message gives the contact's own reason.", "Fix the contact's failure (its record says why); then run the action again.", false),
    category("contact_without_name", "Contact without name or email", "Legacy customer matching needs a name or an email, and the contact has neither.", "Fill in the contact's name or email.", false),
    category("customer_name_taken", "Customer name taken", "QuickBooks has another customer with the contact's name (and email).", "Choose the customer in the action, or rename one of them.", false),
    category("no_line_items", "No line items", "The record has no line items to put on the document.", "Add the products sold to the deal or quote (or choose an item for a payment's amount).", false),
    category("unmatched_items", "Products without QuickBooks items", "Some line items match no QuickBooks item (by link or SKU), and the action may not create products; nothing was made.", "Sync the products, add their SKUs in QuickBooks, pick an item in the action, or let the action create missing products.", false),
    category("no_income_account", "No income account", "QuickBooks has no income account to put new items on.", "Choose the income account in the product settings.", false),
    category("taxable_lines", "Taxed lines on a paid invoice", "A paid invoice is made of non-taxable lines only, and a line is taxed.", "Use a sales receipt for taxed sales.", false),
    category("invoice_payment", "Payment of a HubSpot invoice", "The payment was made on a HubSpot invoice, which reaches QuickBooks through the invoice sync; booking it again would count the sale twice.", "Nothing: the invoice sync books it.", false),
    category("partial_refund", "Not refunded in full", "A refund receipt is made for full refunds only.", "Record partial refunds in QuickBooks directly.", false),
    category("no_fee", "No fee", "The payment carries no processing or platform fee.", "Nothing: there is no fee to book.", false),
    category("fee_accounts_needed", "Fee accounts not chosen", "The expense needs the account fees are paid from and the expense account they go on.", "Choose both in the action settings.", false),
    category("refund_account_needed", "Refund account not chosen", "A refund receipt needs the account the refund is paid from.", "Choose it in the action settings.", false),
    category("unknown_field", "No such field", "The options asked for are of a field the action does not have.", "Report it with the message.", false),
    category("unknown_action", "Unknown action", "Deferred work names an action this version does not know.", "Report it with the message.", false),
    // Queued work.
    category("terminal", "Stopped", "Queued work failed in a way retrying cannot mend; it is kept with its reason.", "Fix the cause named in the message; then retry it.", false),
    category("malformed", "Unreadable queued work", "A queued message is not one this queue carries; it is kept as it was.", "Report it with the message.", false),
    category("exhausted", "Gave up after retries", "Queued work failed too many times in a row; it is kept with its last reason.", "Fix the cause named in the message; then retry it.", false),
];

/// The category of `code`, if it is one.
pub fn explain(code: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::HubSpotError;
    use crate::qbo::{FaultError, QboError};

    #[test]
    fn every_category_is_explained_once() {
        let mut codes: Vec<&str> = CATEGORIES.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before, "a category is listed twice");
        for c in CATEGORIES {
            assert!(
                !c.title.is_empty() && c.explanation.ends_with('.') && c.fix.ends_with('.'),
                "{c:?}"
            );
        }
        assert!(explain("unmatched_items").is_some_and(|c| !c.retried_automatically));
        assert!(explain("rate_limited").is_some_and(|c| c.retried_automatically));
        assert_eq!(explain("no_such_thing"), None);
    }

    /// What the providers' errors are classed as is explained.
    #[test]
    fn the_clients_categories_are_explained() {
        let fault = |code: &str| QboError::Fault {
            status: 400,
            errors: vec![FaultError {
                code: code.into(),
                message: String::new(),
                detail: String::new(),
                element: None,
            }],
        };
        let mut errors: Vec<&str> = [
            "610", "2020", "2010", "3001", "3100", "4000", "5010", "6000", "6140", "6210", "6240",
            "6070", "10000",
        ]
        .iter()
        .map(|c| fault(c).category())
        .collect();
        errors.extend(
            [
                QboError::Throttled { retry_after: None },
                QboError::Unavailable(String::new()),
                QboError::Unauthorized(String::new()),
                QboError::ReconnectRequired(String::new()),
            ]
            .iter()
            .map(QboError::category),
        );
        for (status, category) in [
            (404, "OBJECT_NOT_FOUND"),
            (409, "CONFLICT"),
            (403, "MISSING_SCOPES"),
            (500, "ERROR"),
            (400, "VALIDATION_ERROR"),
        ] {
            errors.push(
                HubSpotError::Api {
                    status,
                    category: category.into(),
                    message: String::new(),
                }
                .category(),
            );
        }
        for code in errors {
            assert!(explain(code).is_some(), "{code} is not explained");
        }
    }

    /// Every category the crate writes as a literal is explained: the refusals of the sync
    /// and of the actions, read from the sources.
    #[test]
    fn the_categories_the_code_names_are_explained() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src];
        let mut missing = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for marker in ["category: \"", "refused(\""] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let code: String = rest.chars().take_while(|c| *c != '"').collect();
                    if explain(&code).is_none() {
                        missing.push(format!("{}: {code}", path.display()));
                    }
                }
            }
            // `refused(` with the code on the next line.
            for (at, _) in text.match_indices("refused(\n") {
                let rest = text[at + "refused(\n".len()..].trim_start();
                if let Some(rest) = rest.strip_prefix('"') {
                    let code: String = rest.chars().take_while(|c| *c != '"').collect();
                    if explain(&code).is_none() {
                        missing.push(format!("{}: {code}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "categories without an explanation: {missing:#?}"
        );
    }
}
