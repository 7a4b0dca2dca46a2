#!/usr/bin/env python3
"""Deploys infra/template.yaml into a local AWS-compatible endpoint and prints a wiring manifest.

The SAM template is translated to plain CloudFormation offline (aws-sam-translator), then created
as a stack through the endpoint's CloudFormation API, so the tables and queues that tests and the
local stack use are exactly the ones the template declares. Function URLs and SQS event source
mappings are not deployed (the local endpoint cannot run Lambda code); they are reported in the
manifest instead, with the resolved environment of each function, for the local stack runner to
wire the real function binaries the way the template says.

Usage: deploy_template.py --endpoint URL --stack NAME [--template PATH] [--parameter Key=Value ...]
"""

import argparse
import io
import os
import json
import sys
import time
import zipfile

import boto3
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

CODE_BUCKET = "local-function-code"
CODE_KEY = "functions.zip"
# Resource types the local endpoint cannot host; they are reported, not deployed.
WIRED_LOCALLY = {"AWS::Lambda::Url", "AWS::Lambda::EventSourceMapping"}


class NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only for policies named by ARN-less name."""

    def load(self):
        return {}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--stack", required=True)
    p.add_argument("--template", default="infra/template.yaml")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args()


def load_sam(path):
    template, problems = decode(path)
    if template is None:
        sys.exit(f"cannot read {path}: {problems}")
    return template


def translate(sam, parameters):
    sam = json.loads(json.dumps(sam))  # plain dicts, no YAML node types
    sam.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"].pop("CodeUri", None)
    return transform(sam, parameters, NoManagedPolicies())


def ref_of(value):
    """The logical id behind {"Ref": X} or {"Fn::GetAtt": [X, attr]}."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else target.split(".")[0]
    return None


def main():
    args = parse_args()
    parameters = dict(p.split("=", 1) for p in args.parameter)
    # The translator fills AWS::Region from the environment; never reach a real account.
    os.environ["AWS_DEFAULT_REGION"] = args.region
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    sam = load_sam(args.template)
    cfn = translate(sam, parameters)

    local = {k: v for k, v in cfn["Resources"].items() if v["Type"] in WIRED_LOCALLY}
    for logical in local:
        del cfn["Resources"][logical]
    # Outputs that name a resource left out would not resolve.
    for name, output in list(cfn.get("Outputs", {}).items()):
        if any(l in json.dumps(output) for l in local):
            del cfn["Outputs"][name]

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=args.region
    )
    client = lambda service: session.client(service, endpoint_url=args.endpoint)
    s3, cloudformation, sqs, lambda_ = client("s3"), client("cloudformation"), client("sqs"), client("lambda")
    events = client("events")

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho 'the local stack runs functions itself' >&2\nexit 1\n")
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=code.getvalue())

    declared = {p for p in cfn.get("Parameters", {})}
    cloudformation.create_stack(
        StackName=args.stack,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items() if k in declared],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 60
    while True:
        stack = cloudformation.describe_stacks(StackName=args.stack)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if status.endswith("FAILED") or "ROLLBACK" in status or time.time() > deadline:
            events = cloudformation.describe_stack_events(StackName=args.stack)["StackEvents"]
            reasons = [e.get("ResourceStatusReason") for e in events if e.get("ResourceStatusReason")]
            sys.exit(f"stack {args.stack} ended in {status}: {reasons[:5]}")
        time.sleep(0.2)

    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId")
        for r in cloudformation.describe_stack_resources(StackName=args.stack)["StackResources"]
    }

    queues = {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        url = physical[logical]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"]) if "RedrivePolicy" in attributes else None
        queues[logical] = {
            "url": url,
            "arn": attributes["QueueArn"],
            "fifo": attributes.get("FifoQueue") == "true",
            "visibility_timeout": int(attributes.get("VisibilityTimeout", 30)),
            "redrive": None
            if redrive is None
            else {
                "dead_letter_arn": redrive["deadLetterTargetArn"],
                "max_receive_count": int(redrive["maxReceiveCount"]),
            },
        }

    tables = {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            ttl = resource["Properties"].get("TimeToLiveSpecification", {})
            tables[logical] = {
                "name": physical[logical],
                "ttl_attribute": ttl.get("AttributeName") if ttl.get("Enabled") else None,
                "deletion_protection": resource["Properties"].get("DeletionProtectionEnabled") is True,
                "point_in_time_recovery": resource["Properties"]
                .get("PointInTimeRecoverySpecification", {})
                .get("PointInTimeRecoveryEnabled")
                is True,
            }

    functions = {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        configuration = lambda_.get_function_configuration(FunctionName=physical[logical])
        binary = sam["Resources"][logical]["Metadata"]["BuildProperties"]["Binary"]
        functions[logical] = {
            "name": physical[logical],
            "binary": binary,
            "timeout": configuration.get("Timeout", 3),
            "memory": configuration.get("MemorySize", 128),
            # Lambda keeps variables as strings; the endpoint leaves a Number parameter's
            # default a number, so make it what Lambda would hold.
            "environment": {
                k: str(v) for k, v in configuration.get("Environment", {}).get("Variables", {}).items()
            },
            "url": None,
            "schedules": [],
            "queues": [],
        }
    for logical, resource in local.items():
        props = resource["Properties"]
        if resource["Type"] == "AWS::Lambda::Url":
            functions[ref_of(props["TargetFunctionArn"])]["url"] = {
                "auth_type": props.get("AuthType", "NONE"),
                "invoke_mode": props.get("InvokeMode", "BUFFERED"),
            }
        else:
            functions[ref_of(props["FunctionName"])]["queues"].append(
                {
                    "queue": ref_of(props["EventSourceArn"]),
                    "batch_size": int(props.get("BatchSize", 10)),
                    "maximum_batching_window_seconds": int(props.get("MaximumBatchingWindowInSeconds", 0)),
                    "report_batch_item_failures": "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                }
            )
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in resource["Properties"]:
            for target in resource["Properties"].get("Targets", []):
                function = ref_of(target["Arn"])
                if function in functions:
                    # Parameters are resolved by the endpoint: read the rule back.
                    rule = events.describe_rule(Name=physical[logical])
                    functions[function]["schedules"].append(rule["ScheduleExpression"])

    json.dump(
        {
            "stack": args.stack,
            "endpoint": args.endpoint,
            "region": args.region,
            "resources": physical,
            "queues": queues,
            "tables": tables,
            "functions": functions,
            # Resources the stack leaves in place when it is deleted or they are replaced.
            "retained": sorted(
                logical
                for logical, resource in cfn["Resources"].items()
                if resource.get("DeletionPolicy") == "Retain" and resource.get("UpdateReplacePolicy") == "Retain"
            ),
        },
        sys.stdout,
        indent=2,
        sort_keys=True,
    )
    print()


if __name__ == "__main__":
    main()
