/** A stream stand-in that keeps what is written (stdout/stderr of CLI functions in tests). */
export class Sink {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}
