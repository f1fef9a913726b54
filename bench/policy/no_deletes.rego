# The no-deletes validator as a Rego policy, for the side-by-side benchmark:
# what a team without plugins would write and evaluate with an OPA engine.
# Same rules as cairn_rules::no_deletes: a deleted document fails, an
# emptied one warns, unless its path matches an `allow` pattern (`*` matches
# any run of characters, slashes included: glob.match with `null`
# delimiters; `[]` would mean the default delimiter ".").
package cairn.no_deletes

import rego.v1

allowed(path) if {
	some pattern in input.config.allow
	glob.match(pattern, null, path)
}

findings contains finding if {
	some doc in input.documents
	doc.status == "deleted"
	not allowed(doc.path)
	finding := {
		"rule": "no-deletes/deleted",
		"severity": "error",
		"message": sprintf("%s is deleted", [doc.path]),
		"document": doc.path,
	}
}

findings contains finding if {
	some doc in input.documents
	doc.status == "modified"
	trim_space(doc.after) == ""
	not allowed(doc.path)
	finding := {
		"rule": "no-deletes/emptied",
		"severity": "warning",
		"message": sprintf("%s is emptied", [doc.path]),
		"document": doc.path,
	}
}

outcome := "fail" if {
	some finding in findings
	finding.severity == "error"
} else := "warn" if {
	count(findings) > 0
} else := "pass"

verdict := {"outcome": outcome, "findings": findings}
