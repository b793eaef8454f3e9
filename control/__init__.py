"""The operator plane: CLI, migrations, tenant administration, local stack runner.

Unlike the three service packages, `control` may import all of them: it is where
processes are wired together and started.
"""
