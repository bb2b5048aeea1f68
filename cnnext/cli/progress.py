"""The progress line ``cnnext train`` prints for each epoch."""
from contextlib import contextmanager
import sys
import time


class Progress:
    """A one-line progress bar per epoch: redrawn in place on a terminal,
    printed once at the end of the epoch otherwise (logs, pipes).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = Progress(n_epochs=2, total=4, stream=out)
    >>> bar.start(1)
    >>> bar.update(4, 0.5, 3)
    >>> bar.end("  | done")
    >>> out.getvalue()[:48]
    'epoch 1/2 [########################] 4/4  loss 0'
    """

    def __init__(self, n_epochs, total, stream=None, width=24):
        self.stream = stream if stream is not None else sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.n_epochs, self.total, self.width = n_epochs, total, width
        self._last_draw, self._half_drawn = 0.0, False

    def start(self, epoch):
        self.epoch, self.t0 = epoch, time.perf_counter()
        self.done, self.loss_sum, self.correct = 0, 0.0, 0

    def update(self, n, loss, correct):
        """Count ``n`` more images, their mean ``loss`` and ``correct`` answers."""
        self.done += n
        self.loss_sum += loss * n
        self.correct += correct
        now = time.perf_counter()
        if self.tty and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw, self._half_drawn = now, True
            self.stream.write("\r" + self._line())
            self.stream.flush()

    @property
    def loss(self):
        return self.loss_sum / max(self.done, 1)

    @property
    def accuracy(self):
        return self.correct / max(self.done, 1)

    def _line(self):
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        filled = self.width * self.done // max(self.total, 1)
        digits = len(str(self.n_epochs))
        return (f"epoch {self.epoch:>{digits}}/{self.n_epochs} "
                f"[{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total}  loss {self.loss:.4f}  "
                f"acc {self.accuracy:6.2%}  {self.done / elapsed:,.0f} img/s")

    def end(self, extra=""):
        line = self._line() + extra
        self.stream.write(("\r" + line + "\n") if self.tty else line + "\n")
        self.stream.flush()
        self._half_drawn = False

    @contextmanager
    def breaking_line(self):
        """Run the block; if it fails while a line is half drawn on the terminal,
        end that line, so that the error message starts on its own."""
        try:
            yield self
        except BaseException:
            if self._half_drawn:
                self.stream.write("\n")
                self.stream.flush()
            raise
