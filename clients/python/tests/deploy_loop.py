"""Deploys a command N times in a row: python3 deploy_loop.py SERVERSWAP_BIN SOCKET N -- CMD...

Exit 0 when every deploy exited 0. Used as the deploy command of `serverswap verify`.
"""
import subprocess
import sys

binary, socket_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
command = sys.argv[sys.argv.index("--") + 1:]
for i in range(count):
    done = subprocess.run([binary, "--socket", socket_path, "-q", "--"] + command, timeout=60)
    if done.returncode != 0:
        print("deploy_loop: deploy %d exited %d" % (i, done.returncode), file=sys.stderr)
        sys.exit(1)
print("deploy_loop: %d deploys ok" % count, file=sys.stderr)
