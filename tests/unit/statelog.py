"""A state plus the offsets an applier would give its operations, for pure tests."""
from storage import operations as ops
from storage.apply import apply
from storage.state import State

TOPIC = "t"


class StateLog:
    def __init__(self, path: str):
        self.path = path
        self.state = State(path)
        self.offset = 0

    def do(self, op, collection: str = "c") -> None:
        txn = self.state.transaction(TOPIC)
        try:
            apply(self.state, ops.Command(collection, op), self.offset)
        finally:  # a failing op keeps what it did before the error, as the applier does
            txn.set_offset(0, self.offset)
            txn.commit()
            self.offset += 1

    def reopen(self) -> None:
        self.state.close()
        self.state = State(self.path)

    def col(self, name: str = "c"):
        return self.state.collections[name]
