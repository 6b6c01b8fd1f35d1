#!/usr/bin/env python3
"""Checks deploy/ with the real tools, and against the README.

- deploy/ecs/task-definition.json and service.json against the ECS API model that ships with
  botocore (RegisterTaskDefinition and CreateService inputs), with botocore's own validator;
- deploy/ecs/cloudformation.yaml with cfn-lint, and deploy/ecs/iam-policy.json with botocore's IAM
  model (CreatePolicy) and cfn-lint's IAM rules (a template of its own holding it: unknown
  actions, a malformed document);
- that the image, the health check, the environment and the limits agree across the files and
  with the README.

Exits 0 when everything holds, 1 listing every problem, 2 when botocore or cfn-lint is missing.
"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
ECS = ROOT / "deploy" / "ecs"

try:
    import botocore.session
    import botocore.validate
    import cfnlint.runner  # noqa: F401 (run below)
    import yaml  # shipped with cfn-lint
except ImportError as e:
    print(f"missing: {e.name} (pip install botocore cfn-lint)", file=sys.stderr)
    sys.exit(2)

problems = []


def validate(operation, params, service="ecs"):
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = botocore.validate.ParamValidator().validate(params, shape)
    if report.has_errors():
        problems.append(f"{operation}: {report.generate_report()}")


task = json.loads((ECS / "task-definition.json").read_text())
service = json.loads((ECS / "service.json").read_text())
validate("RegisterTaskDefinition", task)
validate("CreateService", service)

policy = json.loads((ECS / "iam-policy.json").read_text())
validate("CreatePolicy", {"PolicyName": "spout", "PolicyDocument": json.dumps(policy)}, service="iam")


def lint(path):
    """cfn-lint's own entry point, from this Python (its script need not be on PATH); warnings
    (an unknown IAM action is one) count."""
    run = subprocess.run(
        [sys.executable, "-c", "import sys, cfnlint.runner; sys.exit(cfnlint.runner.main())", str(path)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        problems.append(f"cfn-lint {path.name}: {run.stdout}{run.stderr}")


lint(ECS / "cloudformation.yaml")
# The policy file, as a managed policy in a template of its own.
with tempfile.TemporaryDirectory() as d:
    wrapped = pathlib.Path(d) / "iam-policy.json"
    wrapped.write_text(json.dumps({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"SpoutPolicy": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": policy}}},
    }))
    lint(wrapped)


class Loader(yaml.SafeLoader):
    pass


def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


Loader.add_multi_constructor("!", tagged)
template = yaml.load((ECS / "cloudformation.yaml").read_text(), Loader=Loader)
cfn = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
container = task["containerDefinitions"][0]
readme = (ROOT / "README.md").read_text()


def agree(what, a, b):
    if a != b:
        problems.append(f"{what} differs: {a!r} != {b!r}")


# The same container in both files.
agree("health check", container["healthCheck"]["command"], cfn["HealthCheck"]["Command"])
for key in ["interval", "timeout", "retries", "startPeriod"]:
    agree(f"healthCheck.{key}", container["healthCheck"][key], cfn["HealthCheck"][key[0].upper() + key[1:]])
for key in ["memoryReservation", "stopTimeout"]:
    agree(key, container[key], cfn[key[0].upper() + key[1:]])
parameters = template["Parameters"]
agree("memory", container["memory"], parameters["MemoryLimit"]["Default"])


def variables(env):
    out = {}
    for e in env:
        name, value = e.get("name", e.get("Name")), e.get("value", e.get("Value"))
        if name is None:
            continue  # the template's optional SPOUT_NAME_PATTERN
        if isinstance(value, dict) and value.get("Ref") == "RouteUris":
            value = parameters["RouteUris"]["Default"]
        out[name] = str(value)
    return out


env = variables(container["environment"])
agree("environment", env, variables(cfn["Environment"]))
host, _, port = env.get("SPOUT_HTTP", "0.0.0.0:8000").rpartition(":")
if host not in ("127.0.0.1", "[::1]"):
    problems.append(f"SPOUT_HTTP {env.get('SPOUT_HTTP')!r} must stay on the container's loopback (other containers could read /logs)")
agree("log options", container["logConfiguration"]["options"].get("mode"), cfn["LogConfiguration"]["Options"].get("mode"))
if container["logConfiguration"]["options"].get("mode") != "non-blocking":
    problems.append("spout's own awslogs must be non-blocking, or a CloudWatch outage stalls it")
runtime = (ROOT / "deploy" / "runtime.Dockerfile").read_text()
health = re.search(r'HEALTHCHECK .*CMD (\[.*\])', runtime)
agree("the image's HEALTHCHECK", json.loads(health.group(1)) if health else None, container["healthCheck"]["command"][1:])
mounts = {(m["containerPath"], m["readOnly"]) for m in container["mountPoints"]}
agree("mount points", mounts, {(m["ContainerPath"], m["ReadOnly"]) for m in cfn["MountPoints"]})
if ("/var/run/docker.sock", True) not in mounts:
    problems.append("the Docker socket must be mounted read-only")
if ("/var/lib/docker/containers", True) not in mounts:
    problems.append("the daemon's containers directory must be mounted read-only, at the same path (json-file logs are read there)")
if ("/var/lib/spout", False) not in mounts:
    problems.append("the state directory /var/lib/spout must be a writable host volume")
added = container.get("linuxParameters", {}).get("capabilities", {}).get("add", [])
agree("capabilities added", added, cfn.get("LinuxParameters", {}).get("Capabilities", {}).get("Add", []))
if "SYS_NICE" not in added:
    problems.append("SYS_NICE must be added: the files source opens each rotated log file at real-time priority with it")
if set(added) - {"SYS_NICE"}:
    problems.append(f"no capability beyond SYS_NICE: {sorted(set(added) - {'SYS_NICE'})}")
agree("scheduling", service["schedulingStrategy"], template["Resources"]["Service"]["Properties"]["SchedulingStrategy"])
if service["schedulingStrategy"] != "DAEMON":
    problems.append("the service must be a DAEMON service")

# The policy file grants what the task definition uses, and the stack's execution role the same
# but for creating the log group, which the stack creates itself.


def actions(statements):
    return {a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}


role = template["Resources"]["TaskExecutionRole"]["Properties"]
role_actions = actions(role["Policies"][0]["PolicyDocument"]["Statement"])
policy_actions = actions(policy["Statement"])
agree("the policy file's actions beyond the stack role's", policy_actions - role_actions, {"logs:CreateLogGroup"})
agree("the stack role's actions beyond the policy file's", role_actions - policy_actions, set())
agree("execution role principal", role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"],
      {"Service": "ecs-tasks.amazonaws.com"})
properties = template["Resources"]["TaskDefinition"]["Properties"]
if "ExecutionRoleArn" not in properties:
    problems.append("the stack's task definition does not use its execution role")
log_options = container["logConfiguration"]["options"]
region, group = log_options["awslogs-region"], log_options["awslogs-group"]
if log_options.get("awslogs-create-group") == "true" and "logs:CreateLogGroup" not in policy_actions:
    problems.append("the task definition creates its log group: the policy needs logs:CreateLogGroup")
resources = {r for st in policy["Statement"] for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])}
registry, _, repository = container["image"].partition("/")
account = registry.split(".")[0]
for needed in [f"arn:aws:logs:{region}:{account}:log-group:{group}:*",
               f"arn:aws:ecr:{region}:{account}:repository/{repository.split(':')[0]}"]:
    if needed not in resources:
        problems.append(f"the policy does not name {needed} (the task definition's log group and image)")

# The grace period fits in the stop timeout.


def seconds(duration):
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)", duration).groups()
    return int(number) / {"ms": 1000, "s": 1, "m": 1 / 60}[unit]


grace = seconds(env.get("SPOUT_SHUTDOWN_GRACE", "10s"))
if container["stopTimeout"] <= grace:
    problems.append(f"stopTimeout {container['stopTimeout']} s must exceed SPOUT_SHUTDOWN_GRACE {grace} s")

# The hard limit holds the README's memory bound for this configuration (one route, its queue,
# its line cap) with 50 containers.
queue = int(re.search(r"queue=(\d+)", env["ROUTE_URIS"]).group(1))
line = int(env["SPOUT_MAX_LINE_BYTES"])
bound_mib = 40 + ((queue + 1) * (line + 1024) + 256 * 1024) / 2**20 + 50 * (3 * line + 1536 * 1024) / 2**20
if container["memory"] < bound_mib:
    problems.append(f"memory {container['memory']} MiB is below the README's bound {bound_mib:.0f} MiB")

# The README says the same.
for needle in [container["image"], "/spout health", "ROUTE_URIS", "SPOUT_MAX_LINE_BYTES", "SPOUT_SHUTDOWN_GRACE", "DAEMON",
               "deploy/ecs/cloudformation.yaml", "deploy/ecs/task-definition.json", "deploy/ecs/service.json",
               "deploy/logstash/spout.conf", "deploy/ecs/iam-policy.json", "CAPABILITY_IAM", f"\"memory\": {container['memory']}", f"stopTimeout {container['stopTimeout']}"]:
    if needle not in readme:
        problems.append(f"the README does not mention {needle!r}")

for p in problems:
    print(p, file=sys.stderr)
print(f"deploy/: {'ok' if not problems else f'{len(problems)} problems'} "
      f"(memory bound {bound_mib:.0f} MiB for queue={queue}, {line}-byte lines, 50 containers)")
sys.exit(1 if problems else 0)
