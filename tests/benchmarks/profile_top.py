"""Top frames of a py-spy profile in its collapsed ("raw") format, as text for the
benchmark notes: the frames that hold the most samples by themselves (self) and
with what they call (total), with idle samples counted apart."""
import re
import sys
from collections import Counter

# Frames where a thread waits rather than works (py-spy samples idle threads too
# unless --idle is off; native frames show the waits by name).
IDLE = re.compile(r"epoll_wait|select \(|poll \(|_poll|futex|pthread_cond|sem_wait|__lll_lock|"
                  r"clock_nanosleep|nanosleep")
# The Python frame a waiting thread sits in (its native frame is an unnamed libc address).
IDLE_PY = re.compile(r"^(EpollSelector.select|Condition.wait|Event.wait|_worker|select) \(|"
                     r"^_poll_for_event|^Thread._wait_for_tstate_lock")


def _frame(frame: str) -> str:
    return re.sub(r"\s+", " ", frame.strip())


def summarize(path: str, top: int = 25) -> str:
    self_counts, total_counts = Counter(), Counter()
    samples = idle = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_frame(fr) for fr in stack.split(";")]
            frames = [fr for fr in frames if not fr.startswith(("process ", "thread "))]
            if not frames:
                continue
            samples += n
            python = [fr for fr in frames if ".py:" in fr]
            if IDLE.search(frames[-1]) or (python and IDLE_PY.search(python[-1])):
                idle += n
                continue
            self_counts[frames[-1]] += n
            for fr in set(frames):
                total_counts[fr] += n
    busy = samples - idle
    out = [f"{path}: {samples} samples, {busy} busy ({100 * busy / max(samples, 1):.0f}%), idle frames excluded below",
           "", f"top {top} by self (% of busy samples):"]
    out += [f"{100 * n / max(busy, 1):6.1f}%  {fr}" for fr, n in self_counts.most_common(top)]
    out += ["", f"top {top} by total (% of busy samples):"]
    out += [f"{100 * n / max(busy, 1):6.1f}%  {fr}" for fr, n in total_counts.most_common(top)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(summarize(p))
