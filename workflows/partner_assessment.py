"""What partner onboarding's checks found, as findings for the approver.

:func:`assess` turns the four checks' answers (a result, or the error text of a check that
could not run) into findings (``code``, ``severity``, ``message``), whether the application is
high risk (two approvers) and whether a compliance review comes first. It is deterministic and
runs in the workflow, so the rules are in its history's code, not in an activity's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.partner_store import PartnerDefaults
    from activities.partners import (
        CompanyScoreResult,
        RegistryLookupResult,
        ScreeningResult,
        VatCheckResult,
    )
    from hub.partners.names import similarity


def _finding(code: str, message: str, severity: str = "warning") -> dict[str, Any]:
    return {"code": code, "severity": severity, "message": message}


@dataclass
class Assessment:
    findings: list[dict[str, Any]]
    high_risk: bool
    needs_compliance: bool
    checks: dict[str, Any]


def assess(
    registration_number: str, defaults: PartnerDefaults, answers: dict[str, Any]
) -> Assessment:
    """The checks' answers (a result, or the error text of a check that could not run) as
    findings for the approver; deterministic, so it runs in the workflow."""
    findings: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    high_risk = needs_compliance = False

    vat = answers["vat"]
    if isinstance(vat, VatCheckResult):
        checks["vat"] = {"valid": vat.valid, "name": vat.name, "requestDate": vat.request_date}
        if not vat.valid:
            findings.append(_finding("vatInvalid", f"VIES: {vat.vat_id} is not valid", "high"))
    else:
        checks["vat"] = {"error": vat}
        findings.append(_finding("vatUnchecked", f"the VAT number could not be checked: {vat}"))

    registry = answers["registry"]
    if isinstance(registry, RegistryLookupResult):
        checks["registry"] = {
            "found": registry.found,
            "name": registry.name,
            "legalForm": registry.legal_form,
            "status": registry.status,
        }
        if not registry.found:
            findings.append(
                _finding(
                    "companyNotFound",
                    f"the registry knows no company {registration_number}",
                    "high",
                )
            )
        elif registry.status != "active":
            findings.append(
                _finding(
                    "companyInactive", f"the registry has the company {registry.status}", "high"
                )
            )
    else:
        checks["registry"] = {"error": registry}
        findings.append(
            _finding("registryUnchecked", f"the registry could not be asked: {registry}")
        )

    vat_name = vat.name if isinstance(vat, VatCheckResult) else None
    registry_name = registry.name if isinstance(registry, RegistryLookupResult) else None
    if vat_name and registry_name:
        score = similarity(vat_name, registry_name)
        checks["nameMatch"] = round(score, 1)
        if score < defaults.name_match_threshold:
            findings.append(
                _finding(
                    "nameMismatch",
                    f"registry name {registry_name!r} differs from VAT name {vat_name!r} "
                    f"(similarity {score:.0f})",
                )
            )

    credit = answers["credit"]
    if isinstance(credit, CompanyScoreResult):
        checks["creditScore"] = credit.score
        if credit.score < defaults.min_credit_score:
            high_risk = True
            findings.append(
                _finding(
                    "lowCreditScore",
                    f"credit score {credit.score} is below {defaults.min_credit_score}",
                    "high",
                )
            )
    else:
        high_risk = True
        checks["creditScore"] = {"error": credit}
        findings.append(_finding("creditUnchecked", f"no credit score: {credit}", "high"))

    screening = answers["sanctions"]
    if isinstance(screening, ScreeningResult):
        checks["sanctions"] = {
            "list": screening.list_name,
            "listedNames": screening.listed_names,
            "hits": screening.hits,
        }
        for hit in screening.hits:
            needs_compliance = high_risk = True
            findings.append(
                _finding(
                    "sanctionsHit",
                    f"{hit['screened']!r} resembles {hit['listed']!r} "
                    f"({hit['euReferenceNumber']}, score {hit['score']})",
                    "high",
                )
            )
    else:
        needs_compliance = high_risk = True
        checks["sanctions"] = {"error": screening}
        findings.append(_finding("sanctionsUnchecked", f"not screened: {screening}", "high"))
    return Assessment(findings, high_risk, needs_compliance, checks)
