// The independent side of scripts/reference/splitmix.py's cross-check: reads
// lines "seed stream call" (seed as a signed 64-bit decimal) and prints, for
// each, the output that java.util.SplittableRandom gives for mixprec's
// keying: new SplittableRandom(seed), `stream` split() calls, one more
// split(), then call + 1 nextLong() calls on it; the last one, in hex.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.SplittableRandom;

public class SplitMixJava {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.trim().split(" ");
            long seed = Long.parseLong(f[0]);
            long stream = Long.parseLong(f[1]);
            long call = Long.parseLong(f[2]);
            SplittableRandom parent = new SplittableRandom(seed);
            for (long k = 0; k < stream; ++k) parent.split();
            SplittableRandom child = parent.split();
            long z = 0;
            for (long c = 0; c <= call; ++c) z = child.nextLong();
            out.append(String.format("%016x", z)).append('\n');
        }
        System.out.print(out);
    }
}
